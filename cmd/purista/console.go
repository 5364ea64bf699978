package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// console prints the lines of every component of `purista dev` on one
// writer, each prefixed with the time and the component's name, so that
// logs of several processes stay readable.
type console struct {
	mu     sync.Mutex
	w      io.Writer
	color  bool
	width  int               // of the longest name, so the lines align
	colors map[string]string // ANSI color of each name
}

// palette colors the processes in turn: green, yellow, magenta, cyan, blue, red.
var palette = []string{"32", "33", "35", "36", "34", "31"}

// newConsole returns a console for the named components; dev's own names
// (dev, broker, topics, build) are bold or blue.
func newConsole(w io.Writer, mode string, names []string) *console {
	c := &console{w: w, colors: map[string]string{"dev": "1", "broker": "34", "topics": "34", "build": "34"}}
	i := 0
	for _, n := range names {
		c.width = max(c.width, len(n))
		if _, ok := c.colors[n]; !ok {
			c.colors[n] = palette[i%len(palette)]
			i++
		}
	}
	switch mode {
	case "always":
		c.color = true
	case "auto":
		if f, ok := w.(*os.File); ok && os.Getenv("NO_COLOR") == "" {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				c.color = true
			}
		}
	}
	return c
}

// line prints one line of a component.
func (c *console) line(component, format string, args ...any) {
	c.lines(component, fmt.Sprintf(format, args...))
}

func (c *console) lines(component, text string) {
	var b strings.Builder
	now := time.Now().Format("15:04:05.000")
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		name := fmt.Sprintf("%-*s", c.width, component)
		if c.color {
			if code, ok := c.colors[component]; ok {
				name = "\x1b[" + code + "m" + name + "\x1b[0m"
			}
		}
		fmt.Fprintf(&b, "%s %s │ %s\n", now, name, l)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.w, b.String())
}

// raw prints text as it is (the demo's transcript, the ready banner).
func (c *console) raw(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.w, text)
}

// bold marks text when colors are on.
func (c *console) bold(s string) string {
	if !c.color {
		return s
	}
	return "\x1b[1m" + s + "\x1b[0m"
}

// writer returns a writer whose complete lines become lines of component;
// Close flushes a last unterminated line.
func (c *console) writer(component string) *lineWriter {
	return &lineWriter{c: c, component: component}
}

type lineWriter struct {
	c         *console
	component string
	mu        sync.Mutex
	buf       []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.c.lines(w.component, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.c.lines(w.component, string(w.buf))
		w.buf = nil
	}
	return nil
}

// rawWriter prints what is written as it is, between the log lines.
type rawWriter struct{ c *console }

func (w rawWriter) Write(p []byte) (int, error) {
	w.c.raw(string(p))
	return len(p), nil
}

func (rawWriter) Close() error { return nil }
