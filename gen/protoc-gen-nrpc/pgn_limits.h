/*
 * pgn_limits.h - protoc-gen-nrpc's limits (STYLE rule 16).
 *
 * The plugin's input comes from protoc, but it is also fuzzed (STYLE rule
 * 33), so every size it reads or writes is bounded. None of these is
 * configurable: a plugin has no flags of its own, and a request that hits
 * one of them is far beyond any real set of .proto files.
 */
#ifndef PGN_LIMITS_H
#define PGN_LIMITS_H

/* PGN_MAX_REQUEST_BYTES caps the CodeGeneratorRequest read from stdin.
 * protoc sends every imported file with source info; 64 MiB is over a
 * hundred times the largest descriptor sets seen in practice (googleapis
 * as a whole is ~10 MiB). */
#define PGN_MAX_REQUEST_BYTES (64u * 1024 * 1024)

/* PGN_MAX_OUTPUT_BYTES caps the generated text of one request, all files
 * together. Output grows with the number of methods (~2 KiB each), so a
 * hostile request could otherwise expand 64 MiB into gigabytes. */
#define PGN_MAX_OUTPUT_BYTES (64u * 1024 * 1024)

/* PGN_MAX_DEPTH caps message nesting in the request, checked on the wire
 * before protobuf-c decodes it: protobuf-c's unpacker recurses once per
 * level with no limit of its own, so a few MiB of nested length prefixes
 * would overflow the stack. protobuf's own parsers stop at 100 too. */
#define PGN_MAX_DEPTH 100

/* PGN_COLUMNS is where generated lines are wrapped (the house
 * .clang-format's ColumnLimit), with tabs counted as 8 columns. */
#define PGN_COLUMNS 79

#endif /* PGN_LIMITS_H */
