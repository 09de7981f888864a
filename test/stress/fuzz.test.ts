/**
 * The long form of test/fuzz.test.ts: the same generators and checks with more inputs.
 * Defaults here: 50,000 through runCommand, 2,000 over SSH exec, 10,000 form key sequences and
 * 200 submissions through the real TUI (about 5 minutes); any KINDLER_FUZZ_* variable set by the caller wins.
 */
process.env.KINDLER_FUZZ_N ??= '50000';
process.env.KINDLER_FUZZ_SSH ??= '2000';
process.env.KINDLER_FUZZ_FORM ??= '10000';
process.env.KINDLER_FUZZ_TUI ??= '200';
await import('../fuzz.test.js');
