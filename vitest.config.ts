import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The compose drill needs Docker and runs on its own: npm run test:compose (vitest.compose.config.ts).
    exclude: [...configDefaults.exclude, 'test/compose/**'],
    testTimeout: 30_000,
    pool: 'forks',
  },
});
