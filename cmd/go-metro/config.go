package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/gometro/go-metro/rttcheck"
	"gopkg.in/yaml.v2"
)

// checkFile is a conf.yaml: init_config plus instances, each parsed once
// into the configuration its check runs with. Agent v5's oldest
// go-metro.yaml called the list `config`; it is accepted too.
type checkFile struct {
	Path      string
	Init      *rttcheck.InitConfig
	Instances []*rttcheck.Config
	Warnings  []string
}

func loadCheckFile(path string) (*checkFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var top yaml.MapSlice // and every mapping in it, as rttcheck.ParseDecoded reads them
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	cf := &checkFile{Path: path}
	var initConfig, instances any
	var haveInstances bool
	for _, item := range top {
		key, _ := item.Key.(string)
		switch key {
		case "init_config":
			initConfig = item.Value
		case "instances", "config":
			if haveInstances {
				return nil, fmt.Errorf("%s: both instances and config are set: use instances", path)
			}
			haveInstances = true
			instances = item.Value
		default:
			cf.Warnings = append(cf.Warnings, fmt.Sprintf("%s: unknown top-level key %q is ignored", path, key))
		}
	}
	list, ok := instances.([]interface{})
	if instances != nil && !ok {
		return nil, fmt.Errorf("%s: instances: must be a list of instances (each starting with \"- interface: ...\")", path)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: instances: at least one instance is required", path)
	}
	for i, inst := range list {
		cfg, err := rttcheck.ParseDecoded(inst, initConfig, i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		cf.Instances = append(cf.Instances, cfg)
	}
	if err := rttcheck.CheckInstances(cf.Instances); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cf.Init = &cf.Instances[0].Init
	return cf, nil
}

// logger implements rttcheck.Logger over the standard library's log with a
// minimum level.
type logger struct {
	mu    sync.Mutex
	l     *log.Logger
	level int
}

// newLogger logs at level and above, in rttcheck.LogLevels' order; info
// when level is not one of them.
func newLogger(w io.Writer, level string) *logger {
	if !slices.Contains(rttcheck.LogLevels, level) {
		level = "info"
	}
	return &logger{l: log.New(w, "", log.LstdFlags|log.LUTC), level: slices.Index(rttcheck.LogLevels, level)}
}

func (l *logger) logf(level, f string, a ...any) {
	if slices.Index(rttcheck.LogLevels, level) < l.level {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l.Printf("| %s | %s", strings.ToUpper(level), fmt.Sprintf(f, a...))
}

func (l *logger) Debugf(f string, a ...any) { l.logf("debug", f, a...) }
func (l *logger) Infof(f string, a ...any)  { l.logf("info", f, a...) }
func (l *logger) Warnf(f string, a ...any)  { l.logf("warn", f, a...) }
func (l *logger) Errorf(f string, a ...any) { l.logf("error", f, a...) }
