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
	// Decoded twice: into plain maps, which apply merge keys (<<) as the
	// agent's decoding does, and into an ordered yaml.MapSlice (every
	// mapping in it decodes as one too), which keeps the keys' order and
	// repeats, for rttcheck.ParseDecoded; rttcheck.WithMerges joins them.
	var plain any
	if err := yaml.Unmarshal(data, &plain); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	plainTop, _ := plain.(map[any]any)
	if plain != nil && plainTop == nil {
		return nil, fmt.Errorf("%s: must be a mapping with init_config: and instances: keys, not %s", path, yamlKind(plain))
	}
	var top yaml.MapSlice
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	cf := &checkFile{Path: path}
	var initConfig, instances any
	var listKey string
	seen := map[string]bool{}
	for _, item := range top {
		key, _ := item.Key.(string)
		if seen[key] {
			// YAML keeps one of them: the other's instances would be lost.
			return nil, fmt.Errorf("%s: %s: appears more than once: put all of it under one %s: key", path, truncate(key), truncate(key))
		}
		seen[key] = true
		switch key {
		case "init_config":
			initConfig = item.Value
			if m, isMap := item.Value.(yaml.MapSlice); isMap {
				initConfig = rttcheck.WithMerges(m, plainTop[key])
			}
		case "instances", "config":
			if listKey != "" {
				return nil, fmt.Errorf("%s: both instances and config are set: config is Agent v5's name for instances, use one instances: list", path)
			}
			listKey, instances = key, item.Value
		default:
			cf.Warnings = append(cf.Warnings, fmt.Sprintf("%s: unknown top-level key %q is ignored", path, truncate(key)))
		}
	}
	if listKey == "" {
		listKey = "instances"
	}
	list, ok := instances.([]interface{})
	if instances != nil && !ok {
		return nil, fmt.Errorf("%s: %s: must be a list of instances (each starting with \"- interface: ...\")", path, listKey)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: %s: at least one instance is required", path, listKey)
	}
	plainList, _ := plainTop[listKey].([]any)
	for i, inst := range list {
		if m, isMap := inst.(yaml.MapSlice); isMap && i < len(plainList) {
			inst = rttcheck.WithMerges(m, plainList[i])
		}
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

// yamlKind names what a YAML document holds, for messages.
func yamlKind(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return "a string"
	case map[any]any:
		return "a mapping"
	}
	return fmt.Sprintf("a %T", v)
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
