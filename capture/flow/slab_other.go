//go:build !unix

package flow

import "errors"

func mapAnon(int) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapAnon([]byte) {}
