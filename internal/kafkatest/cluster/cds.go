package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

// Class data sharing (CDS): a JVM can map the classes another run loaded
// from an archive instead of loading and verifying them from the jars.
// Measured here for one broker: 4.3-4.8 s of CPU to "Kafka Server started"
// without, 2.3-3.0 s with an archive of a broker run; a format run 1.6 s
// against 1.0 s. With three JVMs on two cores, CPU is start-up time.
//
// The archives are dumped by ordinary runs at their exit
// (-XX:ArchiveClassesAtExit) into the jar cache, once per machine: the
// first format run of a cluster dumps format.jsa, the first broker process
// dumps broker.jsa when it is stopped (Close stops it with SIGTERM rather
// than SIGKILL for that). A JVM that finds an archive it cannot use (another
// JDK, other jars) says so in its output and runs without it.
type classSharing struct {
	dir                 string
	formatTaken, broker atomic.Bool
}

// archiveFlags returns the JVM flags for a run of kind "format" or
// "broker", and, when this run is to dump the missing archive, the
// temporary file it dumps into (see finishArchive).
func (c *Cluster) archiveFlags(kind string) (flags []string, tmp string) {
	final := filepath.Join(c.cds.dir, kind+".jsa")
	if _, err := os.Stat(final); err == nil {
		return []string{"-XX:SharedArchiveFile=" + final}, ""
	}
	claim := &c.cds.formatTaken
	if kind == "broker" {
		claim = &c.cds.broker
	}
	if !claim.CompareAndSwap(false, true) {
		return nil, ""
	}
	if err := os.MkdirAll(c.cds.dir, 0o755); err != nil {
		return nil, ""
	}
	// A name of its own: another test process may be dumping too; the
	// last rename wins and each is a whole archive.
	tmp = filepath.Join(c.cds.dir, fmt.Sprintf(".%s.%d.%p.tmp", kind, os.Getpid(), c))
	return []string{"-XX:ArchiveClassesAtExit=" + tmp}, tmp
}

// finishArchive keeps the archive a run dumped when it ended by itself or
// by SIGTERM; a SIGKILLed JVM may have left half a file.
func finishArchive(tmp, kind string, state *os.ProcessState) {
	if tmp == "" {
		return
	}
	ws, ok := state.Sys().(syscall.WaitStatus)
	if info, err := os.Stat(tmp); err == nil && info.Size() > 0 && ok && !(ws.Signaled() && ws.Signal() == syscall.SIGKILL) {
		if os.Rename(tmp, filepath.Join(filepath.Dir(tmp), kind+".jsa")) == nil {
			return
		}
	}
	os.Remove(tmp)
}
