// Package data turns text into training data and reads it back.
//
// # Token shards
//
// Pre-training corpora are stored as token shards: a 32-byte header followed by
// the token ids, little-endian, 2 bytes each when the vocabulary has at most
// 65,536 entries and 4 bytes otherwise.
//
//	offset  size  field
//	0       8     magic "SHOGTOKS"
//	8       4     version, uint32 (1)
//	12      4     token width in bytes, uint32 (2 or 4)
//	16      8     token count, uint64
//	24      4     vocabulary size, uint32 (every id is below it)
//	28      4     reserved, zero
//	32      ...   count tokens
//
// [WriteShard] writes a shard atomically (temporary file, fsync, rename);
// [OpenShard] memory-maps one, so corpora larger than memory work;
// [ParseShard] reads one from bytes. A malformed shard is an error naming the
// file and the byte offset of the problem, never a panic.
//
// [TokenizeFiles] turns text files (plain text: the whole file is one
// document; .jsonl: each line's "text" field is one document) into shards,
// with the end-of-sequence token after every document.
//
// # Loader
//
// [Loader] cuts the concatenated shards into windows of T+1 tokens with stride
// T (so every token but the first is a target exactly once), holds out the
// last windows for validation, and serves training batches of B windows in a
// seeded order that is reshuffled every epoch. Its position is a small value
// ([LoaderState]) that a checkpoint stores, so a resumed run sees exactly the
// batches the uninterrupted run would have seen.
//
// # Instruction and preference data
//
// [ReadInstructions] reads supervised fine-tuning examples from JSONL, in the
// Alpaca form (instruction, input, output) or the chat form (messages of
// role and content). [ReadPreferences] reads preference pairs (prompt,
// chosen, rejected). A bad line is an error "file:line: reason", or is
// skipped and counted when skipInvalid is set.
package data
