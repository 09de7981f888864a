/**
 * The long form of test/fuzz.test.ts: the same generators and checks with more inputs.
 * Defaults here: 100,000 through runCommand, 3,000 over SSH exec, 20,000 form key sequences and
 * 400 submissions through the real TUI; any KINDLER_FUZZ_* variable set by the caller wins.
 */
process.env.KINDLER_FUZZ_N ??= '100000';
process.env.KINDLER_FUZZ_SSH ??= '3000';
process.env.KINDLER_FUZZ_FORM ??= '20000';
process.env.KINDLER_FUZZ_TUI ??= '400';
await import('../fuzz.test.js');
