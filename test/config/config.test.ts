import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';

describe('configuration', () => {
  it('defaults to embedded mode: a SQLite file under ./data, port 8000', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8000);
    expect(c.database).toMatchObject({ dialect: 'sqlite' });
    expect(c.database.dialect === 'sqlite' && c.database.file.endsWith('/data/omnivibe.db')).toBe(true);
    expect(c.redisUrl).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('selects PostgreSQL from DATABASE_URL and keeps pool settings', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/ov', DB_POOL_MAX: '25' });
    expect(c.database).toMatchObject({ dialect: 'postgres', url: 'postgres://u:p@db:5432/ov', poolMax: 25 });
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' }).port).toBe(8000);
  });

  it.each([
    ['PORT', 'eighty', /PORT="eighty" is invalid: expected an integer from 0 to 65535/],
    ['PORT', '70000', /PORT="70000" is invalid/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL="mysql:\/\/x" is invalid: expected sqlite:<file>/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL="loud" is invalid/],
    ['REDIS_URL', 'localhost:6379', /REDIS_URL="localhost:6379" is invalid: expected redis:\/\//],
    ['OMNIVIBE_ADMIN_KEY', 'short', /OMNIVIBE_ADMIN_KEY="short" is invalid: expected at least 24 characters/],
    ['RATE_LIMIT_WRITES_PER_MIN', '0', /RATE_LIMIT_WRITES_PER_MIN="0" is invalid/],
  ])('names the variable and what it accepts: %s=%s', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });

  it('reports every bad variable at once', () => {
    try {
      loadConfig({ PORT: 'x', LOG_LEVEL: 'y' });
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).issues).toHaveLength(2);
    }
  });
});
