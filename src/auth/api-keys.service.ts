import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeysRepo } from '../db/api-keys.repo.js';
import { classifyDbError } from '../db/db-errors.js';
import type { ApiKey, Role } from '../db/types.js';
import { notFound } from '../errors.js';

/** Who is calling: the key's id, name and role. */
export interface Principal {
  keyId: number;
  name: string;
  role: Role;
}

/** A key record as listings show it: never the hash. */
export type ApiKeyView = Omit<ApiKey, 'key_hash'>;

const ROLE_RANK: Record<Role, number> = { viewer: 1, editor: 2, admin: 3 };

/** Whether `role` may do what `required` allows (admin ⊃ editor ⊃ viewer). */
export const roleAllows = (role: Role, required: Role) => ROLE_RANK[role] >= ROLE_RANK[required];

export const hashKey = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

/** Visible part of a generated key (`ov_` and its 8 public characters), listed so operators can tell keys apart. */
export const keyPrefix = (key: string) => key.slice(0, 11);

/**
 * Identifier listed for an operator-chosen key (OMNIVIBE_ADMIN_KEY): `op_` and 8 hex digits of its
 * SHA-256, so no character of the secret itself is shown.
 */
export const operatorKeyId = (key: string) => `op_${hashKey(key).slice(0, 8)}`;

function toView({ key_hash: _hash, ...rest }: ApiKey): ApiKeyView {
  return rest;
}

export interface ApiKeysServiceOptions {
  /** How long a verified key is trusted before the database is asked again, ms. */
  cacheTtlMs: number;
  /** How often last_used_at is written per key, ms (a write per request would be wasteful). */
  touchIntervalMs?: number;
  /** Receives failures of the background last_used_at write. */
  onTouchError: (err: unknown) => void;
}

/**
 * API keys: random, shown once, stored as a SHA-256 hash with a visible prefix.
 * Keys are 256-bit random, so a fast hash is enough; the stored hash is compared
 * in constant time.
 */
/** A bounded map that forgets its oldest entry when full (insertion order). */
class BoundedCache<V> {
  private readonly map = new Map<string, { value: V; expires: number }>();
  constructor(private readonly max: number) {}
  get(key: string, now: number): V | undefined {
    const hit = this.map.get(key);
    return hit && hit.expires > now ? hit.value : undefined;
  }
  set(key: string, value: V, expires: number): void {
    this.map.delete(key);
    this.map.set(key, { value, expires });
    if (this.map.size > this.max) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
  }
  clear(): void {
    this.map.clear();
  }
}

export class ApiKeysService {
  /**
   * Valid and unknown keys are cached apart: unknown keys (a flood of random ones) fill only their
   * own small cache and can never push a valid key out. Each forgets its oldest entry when full.
   */
  private readonly known = new BoundedCache<Principal>(10_000);
  private readonly unknown = new BoundedCache<null>(1_000);
  private readonly lastTouch = new Map<number, number>();

  constructor(
    private readonly keys: ApiKeysRepo,
    private readonly options: ApiKeysServiceOptions,
  ) {}

  /** Creates a key; the returned `key` is the only time the secret exists outside the caller. */
  async create(name: string, role: Role): Promise<{ key: string; record: ApiKeyView }> {
    const key = `ov_${randomBytes(6).toString('base64url')}_${randomBytes(32).toString('base64url')}`;
    return { key, record: await this.insert(name, role, key, keyPrefix(key)) };
  }

  /** Registers a key chosen by the operator (OMNIVIBE_ADMIN_KEY); a no-op when it is already registered. */
  async ensure(name: string, role: Role, key: string): Promise<ApiKeyView> {
    const existing = await this.keys.byHash(hashKey(key));
    const prefix = operatorKeyId(key);
    if (!existing) {
      try {
        return await this.insert(name, role, key, prefix);
      } catch (err) {
        // API processes starting together register the same key: one insert wins, the others find its row.
        if (classifyDbError(err) !== 'unique' || !(await this.keys.byHash(hashKey(key)))) throw err;
        return this.ensure(name, role, key);
      }
    }
    // Rows registered when the listing showed the key's first characters get the identifier.
    return toView(existing.prefix === prefix ? existing : await this.keys.setPrefix(existing.id, prefix));
  }

  private async insert(name: string, role: Role, key: string, prefix: string): Promise<ApiKeyView> {
    return toView(await this.keys.create({ name, role, key_hash: hashKey(key), prefix }));
  }

  async list(): Promise<ApiKeyView[]> {
    return (await this.keys.list()).map(toView);
  }

  async countActive(): Promise<number> {
    return this.keys.countActive();
  }

  async revoke(id: number): Promise<ApiKeyView> {
    const row = await this.keys.revoke(id);
    if (!row) {
      const existing = await this.keys.get(id);
      if (!existing) throw notFound('API_KEY_NOT_FOUND', 'API key', id);
      return toView(existing);
    }
    this.known.clear();
    return toView(row);
  }

  /** The principal of a key already verified and still cached as valid, without any lookup; else undefined. */
  cached(presented: string): Principal | undefined {
    const now = Date.now();
    const principal = this.known.get(presented, now);
    if (principal) this.touch(principal.keyId, now);
    return principal;
  }

  /** The principal for a presented key, or null when it is unknown or revoked. */
  async verify(presented: string): Promise<Principal | null> {
    const now = Date.now();
    // Keyed by the presented key itself: a hit costs one map lookup, no hashing, on the hot path.
    const hit = this.cached(presented);
    if (hit) return hit;
    if (this.unknown.get(presented, now) === null) return null;
    const digest = hashKey(presented);
    const row = await this.keys.byHash(digest);
    const ok =
      row !== undefined &&
      row.revoked_at === null &&
      timingSafeEqual(Buffer.from(row.key_hash, 'hex'), Buffer.from(digest, 'hex'));
    const principal = ok ? { keyId: row.id, name: row.name, role: row.role } : null;
    if (this.options.cacheTtlMs > 0) {
      const expires = now + this.options.cacheTtlMs;
      if (principal) this.known.set(presented, principal, expires);
      else this.unknown.set(presented, null, expires);
    }
    if (principal) this.touch(principal.keyId, now);
    return principal;
  }

  private touch(keyId: number, now: number): void {
    const interval = this.options.touchIntervalMs ?? 60_000;
    if ((this.lastTouch.get(keyId) ?? 0) + interval > now) return;
    this.lastTouch.set(keyId, now);
    this.keys
      .touch(keyId, new Date(now).toISOString())
      .catch((err: unknown) => this.options.onTouchError(err));
  }
}
