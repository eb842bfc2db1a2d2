package rttcheck

import "github.com/gometro/go-metro/capture"

// newCaptureEngine is the production engine factory.
func newCaptureEngine(cfg capture.Config) (engine, error) {
	e, err := capture.New(cfg)
	if err != nil {
		// Never wrap a nil *Engine in a non-nil interface.
		return nil, err
	}
	return e, nil
}
