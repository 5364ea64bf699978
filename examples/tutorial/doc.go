// Package tutorial holds the test that runs the README's tutorial: it
// reads the snippets from README.md, applies them to a copy of the example
// contracts and to the users service, regenerates with buf and the real
// plugins, builds the purista CLI with the result, and makes the tutorial's
// HTTP calls — so the README cannot drift from what works.
package tutorial
