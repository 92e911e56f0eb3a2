package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatTemplate renders a conversation as the text a model is trained on or prompted with.
// With addGenerationPrompt the text ends with the start of an assistant turn.
type ChatTemplate func(messages []Message, addGenerationPrompt bool) string

// ChatMLTemplate is the Jinja form of ChatML that SaveConfig writes as chat_template, so that
// transformers' apply_chat_template renders exactly what ChatML does.
const ChatMLTemplate = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// ChatML renders messages in ChatML, the format of Qwen models:
//
//	<|im_start|>{role}\n{content}<|im_end|>\n   (per message)
//	<|im_start|>assistant\n                     (when addGenerationPrompt)
//
// No system message is added. For plain role/content conversations this is what Qwen's chat
// templates produce, with two differences in the templates: Qwen2.5's inserts a default system
// message when there is none, and Qwen3's starts an assistant message that follows the last
// user message with an empty "<think>\n\n</think>\n\n" block (its reasoning format).
// TestChatGolden checks ChatML against Qwen3's template rendered by jinja2.
func ChatML(messages []Message, addGenerationPrompt bool) string {
	var b strings.Builder
	for _, m := range messages {
		b.WriteString("<|im_start|>")
		b.WriteString(m.Role)
		b.WriteByte('\n')
		b.WriteString(m.Content)
		b.WriteString("<|im_end|>\n")
	}
	if addGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
	}
	return b.String()
}

// Errors from LoadChatTemplate; test with errors.Is.
var (
	// ErrNoChatTemplate: tokenizer_config.json has no chat_template.
	ErrNoChatTemplate = errors.New("no chat_template")
	// ErrUnsupportedChatTemplate: the chat_template is not ChatML-like.
	ErrUnsupportedChatTemplate = errors.New("chat_template is not ChatML (no <|im_start|>); only ChatML is supported")
)

// LoadChatTemplate reads the chat_template of a tokenizer_config.json. shoggo does not run
// Jinja: a template that mentions "<|im_start|>" (Qwen's, or any ChatML variant) is taken to be
// ChatML and ChatML is returned. For a file without chat_template the result is ChatML with an
// error wrapping ErrNoChatTemplate; for any other template (Llama's, Mistral's, ...) it is ChatML
// with an error wrapping ErrUnsupportedChatTemplate. A caller that accepts ChatML as the
// fallback can ignore those two errors (errors.Is); other errors (unreadable file, bad JSON)
// come with a nil template. A chat_template given as a list of named templates uses the one
// named "default".
func LoadChatTemplate(tokenizerConfigPath string) (ChatTemplate, error) {
	c, err := readConfig(tokenizerConfigPath)
	if err != nil {
		return nil, err
	}
	tmpl, err := chatTemplateString(c.ChatTemplate)
	if err != nil {
		return nil, fmt.Errorf("%s: chat_template: %w", tokenizerConfigPath, err)
	}
	switch {
	case tmpl == "":
		return ChatML, fmt.Errorf("%s: %w (using ChatML)", tokenizerConfigPath, ErrNoChatTemplate)
	case strings.Contains(tmpl, "<|im_start|>"):
		return ChatML, nil
	}
	return ChatML, fmt.Errorf("%s: %w (using ChatML)", tokenizerConfigPath, ErrUnsupportedChatTemplate)
}

func chatTemplateString(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", errors.New("neither a string nor a list of {name, template}")
	}
	for _, t := range list {
		if t.Name == "default" {
			return t.Template, nil
		}
	}
	return "", nil
}
