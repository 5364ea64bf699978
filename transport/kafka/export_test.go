package kafka

import "time"

// SetWriterIdle sets how long idle partition writers live, for a test; the
// function it returns restores the default.
func SetWriterIdle(d time.Duration) (restore func()) {
	old := writerIdle
	writerIdle = d
	return func() { writerIdle = old }
}

// ProducerWriters returns how many partition writers the server runs.
func (s *Server) ProducerWriters() int { return s.prod.writers() }

// SetBeforeReaders makes f run in Serve just before the group readers
// start; the function it returns undoes it.
func SetBeforeReaders(f func(*Server)) (restore func()) {
	testHookBeforeReaders = f
	return func() { testHookBeforeReaders = nil }
}
