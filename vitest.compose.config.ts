// The compose drill (test/compose): its own command, `npm run test:compose`, since it needs Docker
// (docker/build-image.sh installs and starts it) and runs after `npm test` in CI, not beside it.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/compose/**/*.test.ts'],
    testTimeout: 120_000,
    pool: 'forks',
  },
});
