import type { DomainServices } from '../domain/services.js';

/** A sample client, campaign and content with a Korean script, for trying the API. */
export async function seedDemo(services: DomainServices) {
  const client = await services.clients.create({
    name: '옴니바이브 커피',
    brand_color: '#3B2F2F',
    industry: 'food & beverage',
    contact_email: 'marketing@example.com',
  });
  const campaign = await services.campaigns.create({
    client_id: client.id,
    name: '겨울 시즌 라떼 캠페인',
    description: '겨울 한정 메뉴 출시를 알리는 숏폼 캠페인',
    platform: 'tiktok',
    concept_tone: 'warm',
    concept_style: 'storytelling',
    voice: 'ko',
    language: 'ko',
    target_duration_s: 30,
    start_date: '2026-12-01',
    end_date: '2027-01-31',
  });
  const content = await services.contents.create(campaign.id, {
    title: '첫눈 오는 날의 라떼',
    keywords: ['라떼', '겨울', '신메뉴'],
  });
  const script = await services.scripts.replace(content.id, [
    { kind: 'hook', text: '첫눈 오는 날, 따뜻한 라떼 한 잔 어떠세요?', duration_s: 3.5 },
    { kind: 'body', text: '12월 1일부터 겨울 한정 라떼 3종이 출시됩니다.', duration_s: 5 },
    { kind: 'body', text: '지금 주문하시면 20% 할인된 가격으로 만나보실 수 있어요.', duration_s: 5 },
    { kind: 'cta', text: '가까운 매장에서 만나요!', duration_s: 2.5 },
  ]);
  return { client, campaign, content, script };
}
