package ctlog

// SetCtfeEntriesOnly sends every get-entries to ctfe (true) or lets
// serveEntries answer what it can (false), for tests that compare them.
func SetCtfeEntriesOnly(v bool) { ctfeEntriesOnly.Store(v) }
