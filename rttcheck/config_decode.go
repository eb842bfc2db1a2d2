package rttcheck

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v2"

	"github.com/gometro/go-metro/capture/packet"
)

// The YAML decoder of the configuration: yaml.v2 reads a section, as the
// agent does, and decodeSection stores it in InitConfig or InstanceConfig
// key by key, so that every error names the key and what was wrong with it.

// decodeSection decodes a section, YAML text or what yaml.v2 made of it,
// into the struct *dst, field by field in the struct's order, so that an
// error names its key: yaml's own struct decoding names only the Go type
// that did not fit, and takes none of Agent v5's quoted numbers. It returns
// the keys it set and appends a warning per unknown key and per alias that
// disagrees with its key.
func decodeSection(section any, where func() string, dst any, warnings *[]string) (keySet, error) {
	bad := func(key, format string, a ...any) error {
		return &ConfigError{Where: where(), Key: key, Reason: fmt.Sprintf(format, a...)}
	}
	// yaml.v2, as the agent and Agent v5 decode: YAML 1.1, aliases resolved.
	// A mapping is decoded again as a yaml.MapSlice, which keeps the keys'
	// order and repeats; a list of mappings would decode as one too.
	if data, isText := section.([]byte); isText {
		section = nil
		err := yaml.Unmarshal(data, &section)
		if plain, isMap := section.(map[any]any); isMap {
			var m yaml.MapSlice
			err = yaml.Unmarshal(data, &m)
			section = WithMerges(m, plain)
		}
		if err != nil {
			return nil, bad("", "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	m, isMap := section.(yaml.MapSlice)
	if list, isList := section.([]any); !isMap && section != nil && (!isList || len(list) > 0) { // null and [] are empty, as to yaml.v2
		return nil, bad("", "must be a mapping of keys to values")
	}
	values := map[string]any{}
	for _, item := range m {
		if k, isString := item.Key.(string); !isString {
			return nil, bad("", "key %s is not a string", echo(item.Key))
		} else if _, dup := values[k]; dup {
			return nil, bad(truncate(k), "appears more than once")
		} else {
			values[k] = item.Value
		}
	}

	s, set := reflect.ValueOf(dst).Elem(), keySet{}
	for i := range s.NumField() {
		f := s.Type().Field(i)
		key, alias := f.Tag.Get("yaml"), f.Tag.Get("alias")
		_, strict := f.Tag.Lookup("agent")
		for _, k := range []string{alias, key} { // the key last: it wins over its alias
			value, ok := values[k]
			if f.Name == "_" || k == "" || !ok {
				continue
			}
			p := reflect.New(f.Type)
			if err := decode(value, p.Interface(), k, strict); err != nil {
				err.Where = where()
				return nil, err
			}
			if prev, ok := set[key]; ok && !reflect.DeepEqual(s.Field(i).Interface(), p.Elem().Interface()) {
				*warnings = append(*warnings, fmt.Sprintf("%s: both %s (%s) and %s (%s) are set: using %s",
					where(), key, truncate(fmt.Sprint(p.Elem())), prev, truncate(fmt.Sprint(s.Field(i))), key))
			}
			s.Field(i).Set(p.Elem())
			set[key] = k
		}
	}
	known := keysOf(s.Type(), true) // after the interface is decoded: where() names it
	for _, item := range m {
		if k := item.Key.(string); !slices.Contains(known, k) {
			*warnings = append(*warnings, fmt.Sprintf("%s: unknown key %s is ignored", where(), echo(k)))
		}
	}
	return set, nil
}

// WithMerges returns ordered, a mapping as yaml.v2 decodes it into a
// yaml.MapSlice, with the keys that its merge keys (`<<: *defaults`) bring,
// taken from plain, the same mapping decoded into a map. yaml.v2 applies
// merge keys when it decodes into a map, as the agent decodes conf.yaml
// files, but drops them from a MapSlice, the form that keeps the keys'
// order and repeats. Keys written in the mapping win over merged ones, as
// YAML says; merged keys come after them, in sorted order.
func WithMerges(ordered yaml.MapSlice, plain any) yaml.MapSlice {
	m, ok := plain.(map[any]any)
	if !ok {
		return ordered
	}
	have := map[any]bool{}
	for _, it := range ordered {
		have[it.Key] = true
	}
	var merged []any
	for k := range m {
		if !have[k] {
			merged = append(merged, k)
		}
	}
	if len(merged) == 0 {
		return ordered
	}
	slices.SortFunc(merged, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	out := slices.Clone(ordered)
	for _, k := range merged {
		out = append(out, yaml.MapItem{Key: k, Value: m[k]})
	}
	return out
}

// kinds name the YAML types, the way messages say them, by the Go type
// yaml.v2 decodes them as; anything else is a mapping (a yaml.MapSlice).
// yaml.v2 reads YAML 1.1, as the agent does: plain yes and on are booleans,
// quoted ones strings, 0x10 an integer.
var kinds = map[reflect.Type]string{nil: "nothing", reflect.TypeFor[bool](): "a boolean",
	reflect.TypeFor[int](): "an integer", reflect.TypeFor[int64](): "an integer", reflect.TypeFor[uint64](): "an integer",
	reflect.TypeFor[float64](): "a number", reflect.TypeFor[string](): "a string", reflect.TypeFor[[]any](): "a list"}

// decode stores v, a value as yaml.v2 decoded it, in *p; an error names key
// (or the list item, as in ips[2]). It accepts what hand-written and Agent
// v5 files hold: quoted numbers and booleans, an unquoted number as a string
// (an interface named 0 is still a name), durations in seconds or as Go
// duration strings ("90s", "5m"). strict accepts only the YAML type the
// agent's own decoding of the key takes.
func decode(v, p any, key string, strict bool) *ConfigError {
	fail := func(format string, a ...any) *ConfigError {
		return &ConfigError{Key: key, Reason: fmt.Sprintf(format, a...)}
	}
	// Only a quoted string carries white space. A number prints as yaml.v2
	// read it (0x10 is 16, 1e3 is 1000) and parses back; nothing else that
	// is not a string does (lists and mappings print in brackets).
	k, s := cmp.Or(kinds[reflect.TypeOf(v)], "a mapping"), strings.TrimSpace(fmt.Sprint(v))
	num, err := strconv.ParseFloat(s, 64)
	isNum := err == nil
	switch p := p.(type) {
	case *string:
		if *p = s; k != "a string" && !isNum {
			return fail("expected a string, got %s", k)
		}
	case *int:
		i, err := strconv.Atoi(s) // a whole number prints as one: 1e3 as 1000
		switch {
		case err == nil:
			*p = i
		case k == "a string":
			return fail("%s is not an integer", echo(v))
		case k == "an integer":
			return fail("%s is out of range", s)
		case k == "a number":
			return fail("%s is not a whole number", s)
		default:
			return fail("expected an integer, got %s", k)
		}
	case *bool:
		b, err := strconv.ParseBool(s) // a boolean prints as true or false
		switch {
		case strict && k != "a boolean":
			return fail("expected true or false, got %s (the agent rejects anything else)", k)
		case k != "a boolean" && k != "a string":
			return fail("expected true or false, got %s", k)
		case err != nil:
			return fail("%s is not true or false", echo(v))
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(s)
		switch {
		case strict && k != "an integer":
			return fail("expected a whole number of seconds, got %s (the agent rejects anything else)", k)
		case isNum && (math.IsNaN(num) || math.Abs(num) > 1e9): // also keeps the product in range
			return fail("%g seconds is out of range", num)
		case isNum:
			*p = time.Duration(num * float64(time.Second))
		case k != "a string":
			return fail("expected a number of seconds, got %s", k)
		case err != nil:
			return fail("%s is not a duration (seconds, or e.g. \"90s\", \"5m\")", echo(v))
		default:
			*p = d
		}
	case *uint16:
		var port int
		if err := decode(v, &port, key, false); err != nil {
			return err
		} else if port < 1 || port > 65535 {
			return fail("%d is not a port number (1-65535)", port)
		}
		*p = uint16(port)
	case *netip.Prefix:
		if err := decode(v, &s, key, false); err != nil {
			return err
		}
		if *p, err = ParsePrefix(s); err != nil {
			return fail("%s is not an IP address or CIDR", echo(s))
		}
	case *packet.Encap:
		// A list of names, or one string ("all", "vxlan gre").
		names := strings.Fields(strings.ReplaceAll(s, ",", " "))
		if k != "a string" {
			names = nil
			if err := decode(v, &names, key, false); err != nil {
				return err
			}
		}
		if *p, err = packet.ParseEncaps(names); err != nil {
			return fail("%v", err)
		}
	default:
		// A list of any of the above, decoded item by item.
		list := reflect.ValueOf(p).Elem()
		items, isList := v.([]any)
		switch {
		case list.Kind() != reflect.Slice:
			return fail("no decoding for %T", p) // only a new field's type: every key's test finds it
		case isList:
			list.Set(reflect.MakeSlice(list.Type(), len(items), len(items)))
		case k != "nothing":
			return fail("expected a list, got %s", k)
		}
		for i, item := range items { // none when null
			if err := decode(item, list.Index(i).Addr().Interface(), fmt.Sprintf("%s[%d]", key, i), false); err != nil {
				return err
			}
		}
	}
	return nil
}
