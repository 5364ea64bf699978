package kafka

import (
	"regexp"
	"testing"
)

// TestValidTopicPart checks the loop against the rule it implements, a
// topic name part of [a-zA-Z0-9._-]+, on every single character and a few
// strings.
func TestValidTopicPart(t *testing.T) {
	rule := regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	inputs := []string{"", "a", "purista.reply.host-1_x", "a b", "é", "a/b", "ok.", "x\x00", "日本"}
	for c := range rune(300) {
		inputs = append(inputs, string(c))
	}
	for _, in := range inputs {
		if got, want := validTopicPart(in) == nil, rule.MatchString(in); got != want {
			t.Errorf("validTopicPart(%q) valid = %v, want %v", in, got, want)
		}
	}
}
