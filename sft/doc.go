// Package sft turns instruction data into supervised fine-tuning batches and
// measures exact-match accuracy.
//
// # Rendering
//
// A [Template] renders a [data.Example] as a list of [Piece]s: prompt text
// (not trained), completion text (trained) and end-of-sequence markers
// (trained). Three templates are provided ([TemplateByName]).
//
// [ChatML] (Qwen's format, rendered with tokenizer.ChatML):
//
//	<|im_start|>system\n{system}<|im_end|>\n          prompt (when present)
//	<|im_start|>user\n{user}<|im_end|>\n              prompt
//	<|im_start|>assistant\n                           prompt (the generation prompt)
//	{assistant}<|im_end|>                             completion
//	EOS                                               completion, final turn only
//
// The text is exactly tokenizer.ChatML(messages, false) without its final
// "\n", plus the tokenizer's EOS id when EOS is not <|im_end|> (a Qwen chat
// tokenizer has EOS = <|im_end|>, a base one <|endoftext|>): generation
// stops at either, and the rule "every completion ends with EOS"
// holds for every tokenizer. An Alpaca example is rendered as one user turn
// (instruction, then "\n\n" and the input when the input is non-empty) and
// one assistant turn (the output).
//
// [Alpaca] (a plain prompt format without preamble):
//
//	### Instruction:\n{instruction}\n\n
//	### Input:\n{input}\n\n                  only when input is non-empty
//	### Response:\n                          (end of the prompt)
//	{output}EOS                              completion
//
// A chat example under Alpaca: a leading system message becomes a preamble
// "{system}\n\n", every user message "### Instruction:\n{content}\n\n", and
// every assistant message "### Response:\n" (prompt) + content + EOS
// (completion).
//
// [Plain] (no headers, the cheapest format for small models on short tasks):
//
//	{instruction}\n
//	{input}\n                                only when input is non-empty
//	{output}EOS                              completion
//
// A chat example under Plain renders every non-assistant message as
// "{content}\n" and every assistant message as content + EOS.
//
// Multi-turn chats train on every assistant turn: each assistant's content
// and its closing token(s) are completion, everything else (system and user
// turns, the "<|im_start|>assistant\n" headers, the "\n" after an
// intermediate <|im_end|>) is masked. Messages after the last assistant
// message carry nothing to learn and are dropped.
//
// # Tokenization and labels
//
// Each piece is encoded separately (Tokenizer.Encode, so special tokens in
// the text are matched) and the ids are concatenated; an EOS piece is the
// EOS id, added only when the previous id is not already EOS. Encoding piece
// by piece puts the prompt/completion boundary on a token boundary and makes
// the training prompt exactly the ids the model is prompted with when
// generating. Labels are the ids with every prompt position set to
// [IgnoreIndex] (-100). Masking is by position, never by id: when the
// padding id equals EOS the EOS that ends a completion is still a label.
//
// # Truncation
//
// When an example has more than maxLen tokens, let P be the tokens before
// the first completion token (the first prompt) and C the rest. The prompt
// keeps its last p = min(P, max(maxLen/2, maxLen-C)) tokens (it is cut
// from the left, so the text nearest the answer and the generation prompt
// survive) and the rest keeps its first c = maxLen-p tokens (cut from the
// right). So the completion is kept whole whenever a prompt of min(P,
// maxLen/2) tokens leaves room for it; otherwise the prompt keeps
// min(P, maxLen/2) tokens and the completion its first maxLen-p. A cut
// completion loses its EOS: the model is not taught to stop in mid-answer.
// In multi-turn chats later turns are the ones cut. Masked tokens left at
// the end after the cut are dropped. An example with no trained label at a
// position >= 1 (position 0 is never a target) is [ErrNoTargets]; EncodeAll
// skips and counts those.
//
// # Batches
//
// [PadBatch] puts one example per row, right-padded: KeyMask is 0 on padding
// and Targets are the labels shifted by one (target[t] = label[t+1], as
// model.ShiftLabels) with -100 at the last token of each example and on
// padding. [Pack] puts several examples in a row (first fit within the
// batch being built): position ids restart at 0 for each example, Segments
// number the examples of a row from 1 (padding is segment 0 with KeyMask 0)
// so attention is block-diagonal, and the last token of an example never
// predicts the first of the next. [Dataset] serves micro-batches in a
// seeded order reshuffled every epoch, padded or packed, with
// Position/Restore for resuming.
//
// The loss is normalised by the caller: train.Step divides by the number of
// targets in all micro-batches of a step together ([CountTargets]), so a
// completion token weighs the same whatever micro-batch it falls in.
//
// # Evaluation
//
// [ExactMatch] prompts the model with each example's prompt (everything
// before the final assistant turn, ending with the template's generation
// prompt), decodes greedily until EOS, the template's end-of-turn token or
// maxNew tokens, and compares the trimmed text with the trimmed reference
// answer.
package sft
