import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { loadTracingConfig, logfireBaseUrl, parsePairs } from '../../src/config/tracing.js';

describe('tracing configuration', () => {
  it('is off unless an endpoint or a Logfire token is set', () => {
    expect(loadConfig({}).telemetry.tracing.enabled).toBe(false);
    expect(loadTracingConfig({ OTEL_SERVICE_NAME: 'api' }).enabled).toBe(false);
  });

  it('takes the standard OTEL_* variables', () => {
    const c = loadTracingConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-team=media,authorization=Bearer%20abc',
      OTEL_SERVICE_NAME: 'omnivibe-api',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.1',
      OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
    });
    expect(c).toMatchObject({
      enabled: true,
      endpoint: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      headers: { 'x-team': 'media', authorization: 'Bearer abc' },
      serviceName: 'omnivibe-api',
      resourceAttributes: { 'deployment.environment': 'prod' },
      sampler: { kind: 'traceidratio', parentBased: true, ratio: 0.1 },
      exportTimeoutMs: 2000,
      scheduleDelayMs: 5000,
      maxQueueSize: 2048,
    });
  });

  it('prefers the traces-specific endpoint, headers, protocol and timeout', () => {
    const c = loadTracingConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom/traces',
      OTEL_EXPORTER_OTLP_HEADERS: 'k=general',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'k=traces',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '3000',
    });
    expect(c).toMatchObject({
      endpoint: 'http://b:4318/custom/traces',
      headers: { k: 'traces' },
      protocol: 'http/json',
      exportTimeoutMs: 3000,
    });
  });

  it('OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turns it off', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    expect(loadTracingConfig({ ...endpoint, OTEL_SDK_DISABLED: 'true' }).enabled).toBe(false);
    expect(loadTracingConfig({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }).enabled).toBe(false);
    expect(loadTracingConfig({ ...endpoint, OTEL_TRACES_EXPORTER: 'otlp' }).enabled).toBe(true);
  });

  it('LOGFIRE_TOKEN sends to the Logfire region the token names, or LOGFIRE_BASE_URL', () => {
    expect(loadTracingConfig({ LOGFIRE_TOKEN: 'pylf_v1_eu_abcdef0123456789' })).toMatchObject({
      enabled: true,
      endpoint: 'https://logfire-eu.pydantic.dev/v1/traces',
      headers: { Authorization: 'pylf_v1_eu_abcdef0123456789' },
    });
    expect(loadTracingConfig({ LOGFIRE_TOKEN: 'pylf_v1_us_abcdef0123456789' }).endpoint).toBe(
      'https://logfire-us.pydantic.dev/v1/traces',
    );
    // An older token without a region: the US region.
    expect(logfireBaseUrl('0123456789abcdef')).toBe('https://logfire-us.pydantic.dev');
    expect(
      loadTracingConfig({
        LOGFIRE_TOKEN: 'pylf_v1_us_abcdef0123456789',
        LOGFIRE_BASE_URL: 'https://lf.example.com/',
      }).endpoint,
    ).toBe('https://lf.example.com/v1/traces');
    // An explicit OTLP endpoint wins; the token still authorises.
    expect(
      loadTracingConfig({
        LOGFIRE_TOKEN: 'pylf_v1_eu_abcdef0123456789',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      }),
    ).toMatchObject({
      endpoint: 'http://c:4318/v1/traces',
      headers: { Authorization: 'pylf_v1_eu_abcdef0123456789' },
    });
  });

  it('a token naming an unknown region needs LOGFIRE_BASE_URL', () => {
    expect(() => loadTracingConfig({ LOGFIRE_TOKEN: 'pylf_v1_mars_abcdef0123456789' })).toThrow(
      /LOGFIRE_BASE_URL/,
    );
  });

  it.each([
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318', /an http\(s\) URL/],
    ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'ftp://c/v1/traces', /an http\(s\) URL/],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc', /http\/protobuf or http\/json/],
    ['OTEL_EXPORTER_OTLP_HEADERS', 'novalue', /key=value pairs/],
    ['OTEL_EXPORTER_OTLP_HEADERS', 'k=%E0%A4%A', /key=value pairs/],
    ['OTEL_TRACES_SAMPLER', 'sometimes', /parentbased_traceidratio/],
    ['OTEL_TRACES_SAMPLER_ARG', '1.5', /a ratio from 0 to 1/],
    ['OTEL_BSP_SCHEDULE_DELAY', '-1', /an integer from 1/],
    ['OTEL_SDK_DISABLED', 'yes', /true or false/],
    ['OTEL_TRACES_EXPORTER', 'zipkin', /otlp or none/],
    ['LOGFIRE_TOKEN', 'bad token!', /Logfire write token/],
  ])('names the variable and what it accepts: %s=%s', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(`${name}=${JSON.stringify(value)} is invalid`);
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });

  it('a ratio for a sampler that takes none is refused', () => {
    expect(() =>
      loadTracingConfig({ OTEL_TRACES_SAMPLER: 'always_on', OTEL_TRACES_SAMPLER_ARG: '0.5' }),
    ).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
  });

  it('parses key=value lists with URL-encoded values', () => {
    expect(parsePairs('a=1, b = x%2Cy ,')).toEqual({ a: '1', b: 'x,y' });
    expect(parsePairs('=v')).toBeUndefined();
  });
});
