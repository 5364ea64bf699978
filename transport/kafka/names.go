package kafka

// The names of the topics and consumer groups the transport uses, before
// any topic prefix (WithTopicPrefix puts it in front of each). They are
// exported for tools that derive permissions from them (purista acl); the
// transport names its topics and groups with these and nothing else.

const (
	// ReplyTopicPrefix starts every client's reply topic:
	// purista.reply.<client id>.
	ReplyTopicPrefix = replyTopicPrefix
	// StreamTopicPrefix starts every server's stream control topic:
	// purista.stream.<client id>.
	StreamTopicPrefix = "purista.stream."
	// ReplyStoreTopicPrefix starts every service's reply store topic:
	// purista.replies.<service full name>.
	ReplyStoreTopicPrefix = replyStoreTopicPrefix
)

// RequestGroup returns the consumer group the instances of a service share
// to take its requests.
func RequestGroup(service string) string { return "purista." + service }

// ReplyStoreTopic returns the reply store topic of a service.
func ReplyStoreTopic(service string) string { return replyStoreTopicPrefix + service }
