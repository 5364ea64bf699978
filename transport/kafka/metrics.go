package kafka

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the counters of Servers and ClientConns as Prometheus
// metrics: register it with a prometheus.Registerer.
type Collector struct {
	servers map[string]*Server
	clients map[string]*ClientConn
}

var (
	descServer = func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("purista_kafka_server_"+name, help, []string{"server"}, nil)
	}
	descClient = func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("purista_kafka_client_"+name, help, []string{"client"}, nil)
	}
	mHandled      = descServer("requests_answered_total", "Requests answered with a reply record.")
	mExpired      = descServer("requests_expired_total", "Requests skipped because their deadline passed while they waited in Kafka.")
	mMalformed    = descServer("records_malformed_total", "Records on request topics that were not answerable purista requests.")
	mReplyFailed  = descServer("replies_failed_total", "Replies that could not be written (the caller times out).")
	mCommitFailed = descServer("commits_failed_total", "Offset commits that failed (requests may be delivered again).")
	mSrvProduce   = descServer("produce_requests_total", "Produce requests sent (replies, dead letters).")
	mSrvRecords   = descServer("records_produced_total", "Records produced (replies, dead letters).")
	mCalls        = descClient("calls_total", "Calls sent as request records.")
	mOrphans      = descClient("orphan_replies_total", "Replies that arrived after their call ended.")
	mBadReplies   = descClient("replies_malformed_total", "Reply records without a correlation id.")
	mCliProduce   = descClient("produce_requests_total", "Produce requests sent (requests and reply-topic keepalives).")
	mCliRecords   = descClient("records_produced_total", "Records produced (requests and reply-topic keepalives).")
)

// NewCollector returns a Collector for the named servers and clients; a
// name becomes the metrics' "server" or "client" label.
func NewCollector(servers map[string]*Server, clients map[string]*ClientConn) *Collector {
	return &Collector{servers: servers, clients: clients}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mHandled, mExpired, mMalformed, mReplyFailed, mCommitFailed, mSrvProduce, mSrvRecords, mCalls, mOrphans, mBadReplies, mCliProduce, mCliRecords} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	for name, s := range c.servers {
		st := s.Stats()
		counter(mHandled, st.Handled, name)
		counter(mExpired, st.Expired, name)
		counter(mMalformed, st.Malformed, name)
		counter(mReplyFailed, st.ReplyFailed, name)
		counter(mCommitFailed, st.CommitFailed, name)
		counter(mSrvProduce, st.ProduceRequests, name)
		counter(mSrvRecords, st.RecordsProduced, name)
	}
	for name, cl := range c.clients {
		st := cl.Stats()
		counter(mCalls, st.Calls, name)
		counter(mOrphans, st.OrphanReplies, name)
		counter(mBadReplies, st.MalformedReplies, name)
		counter(mCliProduce, st.ProduceRequests, name)
		counter(mCliRecords, st.RecordsProduced, name)
	}
}
