package source

import (
	"errors"
	"io"
	"os"
)

// Errors a source wraps, so that callers can tell failures apart with
// errors.Is. Messages name the interface or file involved.
var (
	// ErrNoSuchInterface: the interface named in Options does not exist.
	ErrNoSuchInterface = errors.New("no such network interface")
	// ErrInterfaceGone: the interface was deleted while capturing. The
	// source is dead; reopen it once the interface is back.
	ErrInterfaceGone = errors.New("network interface disappeared")
	// ErrInterfaceDown: the interface is (or went) administratively down.
	// This is a warning, not a failure: the source stays open and frames
	// flow again as soon as the interface comes back up. Next returns it
	// once per transition to down, then ErrTimeout while the link is down.
	ErrInterfaceDown = errors.New("network interface is down")
	// ErrClosed: Next (or SetFilter) was called after Close. It wraps
	// os.ErrClosed.
	ErrClosed = errClosed{}
	// ErrUnsupportedBackend: OpenLive was given a backend this build lacks.
	ErrUnsupportedBackend = errors.New("unsupported capture backend")
	// ErrNicePermission: the process may not lower a thread's nice value
	// (LockThreadNice): it lacks CAP_SYS_NICE and RLIMIT_NICE does not
	// allow the value.
	ErrNicePermission = errors.New("not permitted to raise a thread's priority (needs CAP_SYS_NICE)")
)

type errClosed struct{}

func (errClosed) Error() string        { return "capture: source is closed" }
func (errClosed) Is(target error) bool { return target == os.ErrClosed }

// Errors of file sources.
var (
	ErrEmptyFile           = errors.New("file is empty")
	ErrNotCaptureFile      = errors.New("not a pcap or pcapng capture file")
	ErrUnsupportedLinkType = errors.New("unsupported link type")
	ErrCorrupt             = errors.New("corrupt capture file")
	// ErrTruncated: the file ends inside a record or block, as one does
	// when tcpdump is killed or the disk fills up. Next returns it after
	// the last complete record, and again on every later call; the records
	// before it are good, so a replay reports them and warns (tshark does
	// the same). OpenFile never returns it: a file cut before its first
	// record fails to open with an error wrapping io.ErrUnexpectedEOF.
	// ErrTruncated wraps io.ErrUnexpectedEOF too.
	ErrTruncated = errTruncated{}
)

type errTruncated struct{}

func (errTruncated) Error() string        { return "file ends inside a record (cut short)" }
func (errTruncated) Is(target error) bool { return target == io.ErrUnexpectedEOF }
