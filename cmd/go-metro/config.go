package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"

	"github.com/gometro/go-metro/rttcheck"
	"gopkg.in/yaml.v2"
)

// checkFile is a conf.yaml: init_config plus instances, each parsed once
// into the configuration its check runs with. Agent v5's oldest
// go-metro.yaml called the list `config`; it is accepted too.
type checkFile struct {
	Init      *rttcheck.InitConfig
	Instances []*rttcheck.Config
	Warnings  []string
}

func loadCheckFile(path string) (*checkFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var top yaml.MapSlice
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	cf := &checkFile{}
	var initRaw []byte
	var instances interface{}
	var haveInstances bool
	for _, item := range top {
		key, _ := item.Key.(string)
		switch key {
		case "init_config":
			if item.Value != nil {
				if initRaw, err = yaml.Marshal(item.Value); err != nil {
					return nil, fmt.Errorf("%s: init_config: %w", path, err)
				}
			}
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
		b, err := yaml.Marshal(inst)
		if err != nil {
			return nil, fmt.Errorf("%s: instances[%d]: %w", path, i, err)
		}
		cfg, err := rttcheck.ParseConfig(b, initRaw, i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		cf.Instances = append(cf.Instances, cfg)
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

var levels = map[string]int{"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4, "critical": 5, "off": 6}

func newLogger(w io.Writer, level string) *logger {
	lv, ok := levels[level]
	if !ok {
		lv = levels["info"]
	}
	return &logger{l: log.New(w, "", log.LstdFlags|log.LUTC), level: lv}
}

func (l *logger) logf(lv int, tag, f string, a ...any) {
	if lv < l.level {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l.Printf("| %s | %s", tag, fmt.Sprintf(f, a...))
}

func (l *logger) Debugf(f string, a ...any) { l.logf(1, "DEBUG", f, a...) }
func (l *logger) Infof(f string, a ...any)  { l.logf(2, "INFO", f, a...) }
func (l *logger) Warnf(f string, a ...any)  { l.logf(3, "WARN", f, a...) }
func (l *logger) Errorf(f string, a ...any) { l.logf(4, "ERROR", f, a...) }
