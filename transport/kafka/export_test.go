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
