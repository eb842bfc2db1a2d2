// Package log: the agent's logger, the calls go-metro makes.
package log

// LogLevel is a log level.
type LogLevel int

// DebugLvl is the debug level.
const DebugLvl LogLevel = 1

// ShouldLog reports whether lvl is logged.
func ShouldLog(lvl LogLevel) bool { return false }

// DebugcStackDepth logs at debug level with context.
func DebugcStackDepth(message string, depth int, context ...interface{}) {}

// InfocStackDepth logs at info level with context.
func InfocStackDepth(message string, depth int, context ...interface{}) {}

// WarncStackDepth logs at warn level with context.
func WarncStackDepth(message string, depth int, context ...interface{}) error { return nil }

// ErrorcStackDepth logs at error level with context.
func ErrorcStackDepth(message string, depth int, context ...interface{}) error { return nil }

// Errorf logs at error level and returns the message as an error.
func Errorf(format string, params ...interface{}) error { return nil }
