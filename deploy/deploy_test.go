package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v2"

	"github.com/gometro/go-metro/internal/imagecontext"
	"github.com/gometro/go-metro/rttcheck"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseConf parses a go-metro conf.yaml (init_config + instances) with the
// check's own parser, every instance, and fails on errors and warnings.
func parseConf(t *testing.T, where, text string) []*rttcheck.Config {
	t.Helper()
	var file struct {
		Init      yaml.MapSlice   `yaml:"init_config"`
		Instances []yaml.MapSlice `yaml:"instances"`
	}
	if err := yaml.UnmarshalStrict([]byte(text), &file); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if len(file.Instances) == 0 {
		t.Fatalf("%s: no instances", where)
	}
	initB, err := yaml.Marshal(file.Init)
	if err != nil {
		t.Fatal(err)
	}
	var out []*rttcheck.Config
	for i, in := range file.Instances {
		b, err := yaml.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := rttcheck.ParseConfig(b, initB, i)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if len(cfg.Warnings) > 0 {
			t.Errorf("%s: warnings %q", where, cfg.Warnings)
		}
		out = append(out, cfg)
	}
	return out
}

// dockerfile is the instructions of a Dockerfile, continuation lines
// joined, comments dropped.
func dockerfile(t *testing.T, path string) []string {
	t.Helper()
	text := strings.ReplaceAll(string(read(t, path)), "\\\n", " ")
	var out []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// agentVersion is the datadog/agent version the custom image starts FROM,
// the default of its AGENT_VERSION build argument.
func agentVersion(t *testing.T, lines []string) string {
	t.Helper()
	var version string
	var froms []string
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "ARG AGENT_VERSION="); ok && len(froms) == 0 {
			version = v
		}
		if strings.HasPrefix(l, "FROM ") {
			froms = append(froms, l)
		}
	}
	if !regexp.MustCompile(`^7\.\d+\.\d+$`).MatchString(version) {
		t.Fatalf("Dockerfile.agent: ARG AGENT_VERSION=%q before the first FROM, want an agent 7 release", version)
	}
	if len(froms) == 0 || froms[len(froms)-1] != "FROM datadog/agent:${AGENT_VERSION}" {
		t.Errorf("Dockerfile.agent: final stage %v, want FROM datadog/agent:${AGENT_VERSION}", froms)
	}
	return version
}

func TestDockerfileAgent(t *testing.T) {
	lines := dockerfile(t, "docker/Dockerfile.agent")
	v := agentVersion(t, lines)
	// go-metro is built and tested against 7.63 (check/README.md); the
	// image must start from the release of that checkout.
	if !strings.HasPrefix(v, "7.63.") {
		t.Errorf("AGENT_VERSION %s: go-metro's checkout is 7.63", v)
	}
	for _, want := range []string{
		"COPY --from=datadog-agent . /src/datadog-agent",
		`RUN make agent AGENT_SRC=/src/datadog-agent AGENT_TAGS="${AGENT_TAGS}"`,
		"COPY --from=build /src/go-metro/bin/agent /opt/datadog-agent/bin/agent/agent",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("Dockerfile.agent lacks %q", want)
		}
	}
}

// values is the part of the datadog chart's values these files set.
type values struct {
	Agents struct {
		Image struct {
			Repository    string `yaml:"repository"`
			Tag           string `yaml:"tag"`
			DoNotCheckTag bool   `yaml:"doNotCheckTag"`
		} `yaml:"image"`
		UseHostNetwork bool `yaml:"useHostNetwork"`
		Containers     struct {
			Agent struct {
				SecurityContext securityContext `yaml:"securityContext"`
			} `yaml:"agent"`
		} `yaml:"containers"`
	} `yaml:"agents"`
	Datadog struct {
		Confd     map[string]string `yaml:"confd"`
		Dogstatsd struct {
			Port            int    `yaml:"port"`
			NonLocalTraffic *bool  `yaml:"nonLocalTraffic"`
			UseSocketVolume bool   `yaml:"useSocketVolume"`
			SocketPath      string `yaml:"socketPath"`
			HostSocketPath  string `yaml:"hostSocketPath"`
			UseHostPort     *bool  `yaml:"useHostPort"`
		} `yaml:"dogstatsd"`
	} `yaml:"datadog"`
}

type securityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	RunAsUser                *int  `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	Capabilities             struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

func TestHelmCustomAgent(t *testing.T) {
	var v values
	if err := yaml.UnmarshalStrict(read(t, "helm/values-custom-agent.yaml"), &v); err != nil {
		t.Fatal(err)
	}
	img := v.Agents.Image
	version := agentVersion(t, dockerfile(t, "docker/Dockerfile.agent"))
	if img.Repository == "" || strings.Contains(img.Repository, "datadoghq/agent") || strings.HasSuffix(img.Repository, "datadog/agent") {
		t.Errorf("agents.image.repository %q: want the custom image, not the stock one", img.Repository)
	}
	if want := version + "-go-metro-" + rttcheck.Version; img.Tag != want || !img.DoNotCheckTag {
		t.Errorf("agents.image tag %q (doNotCheckTag %v), want %q with doNotCheckTag (the chart rejects unknown tags)", img.Tag, img.DoNotCheckTag, want)
	}
	if !v.Agents.UseHostNetwork {
		t.Error("agents.useHostNetwork must be true: go-metro captures the node's interface")
	}
	if caps := v.Agents.Containers.Agent.SecurityContext.Capabilities.Add; !slices.Equal(caps, []string{"NET_RAW"}) {
		t.Errorf("agent container capabilities add %v, want [NET_RAW]", caps)
	}
	conf, ok := v.Datadog.Confd["go-metro.yaml"]
	if !ok || len(v.Datadog.Confd) != 1 {
		t.Fatalf("datadog.confd %v: want go-metro.yaml", v.Datadog.Confd)
	}
	for _, c := range parseConf(t, "datadog.confd go-metro.yaml", conf) {
		if c.Instance.Interface == "" || c.Instance.Interface == rttcheck.FileInterface {
			t.Errorf("instance captures %q, want a live interface", c.Instance.Interface)
		}
	}
}

// k8sObject is the part of the manifests these checks read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec struct {
				HostNetwork     bool            `yaml:"hostNetwork"`
				SecurityContext securityContext `yaml:"securityContext"`
				Containers      []struct {
					Name            string          `yaml:"name"`
					Image           string          `yaml:"image"`
					Args            []string        `yaml:"args"`
					SecurityContext securityContext `yaml:"securityContext"`
					VolumeMounts    []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
						ReadOnly  bool   `yaml:"readOnly"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name      string `yaml:"name"`
					ConfigMap struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					HostPath struct {
						Path string `yaml:"path"`
					} `yaml:"hostPath"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func TestDaemonSetStockAgent(t *testing.T) {
	dec := yaml.NewDecoder(bytes.NewReader(read(t, "kubernetes/go-metro-daemonset.yaml")))
	objs := map[string]k8sObject{}
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		objs[o.Kind] = o
	}
	cm, ds := objs["ConfigMap"], objs["DaemonSet"]
	if cm.Metadata.Name == "" || ds.Metadata.Name == "" || cm.Metadata.Namespace != ds.Metadata.Namespace {
		t.Fatalf("want a ConfigMap and a DaemonSet in one namespace, got %v", objs)
	}
	cfgs := parseConf(t, "ConfigMap conf.yaml", cm.Data["conf.yaml"])

	// It captures the node's interface (host network) and sends to the
	// agent's DogStatsD socket, mounted from the host directory the agent
	// makes it in.
	var stock values
	if err := yaml.UnmarshalStrict(read(t, "helm/values-stock-agent.yaml"), &stock); err != nil {
		t.Fatal(err)
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork {
		t.Error("hostNetwork must be true: go-metro captures the node's interface")
	}
	dsd := stock.Datadog.Dogstatsd
	if !dsd.UseSocketVolume || dsd.SocketPath == "" || path.Dir(dsd.SocketPath)+"/" != dsd.HostSocketPath {
		t.Errorf("agent DogStatsD %+v: want useSocketVolume, socketPath in hostSocketPath", dsd)
	}
	ini := cfgs[0].Init
	if ini.StatsdIP != "unix://"+dsd.SocketPath {
		t.Errorf("go-metro sends to statsd_ip %q, the agent's DogStatsD listens on %s", ini.StatsdIP, dsd.SocketPath)
	}

	// Least privilege.
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", psc)
	}
	if !sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true")
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || !slices.Equal(sc.Capabilities.Add, []string{"NET_RAW"}) {
		t.Errorf("capabilities %+v: want drop [ALL], add [NET_RAW] only", sc.Capabilities)
	}
	// A non-root process gets NET_RAW from the binary's file capability,
	// which the kernel ignores under no_new_privs.
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation: false would set no_new_privs, and the kernel would ignore the binary's cap_net_raw")
	}

	// The image: go-metro run, as the same non-root user, with the file
	// capability its context archive carries (tests/image_test.go runs it).
	img := dockerfile(t, "docker/Dockerfile.go-metro")
	if !slices.Contains(img, "USER 65532:65532") || *psc.RunAsUser != 65532 {
		t.Errorf("image user vs runAsUser %d: want 65532 in both", *psc.RunAsUser)
	}
	if want := []string{"FROM scratch", "ADD " + imagecontext.TarName + " /"}; !slices.Equal(img[:2], want) {
		t.Errorf("Dockerfile.go-metro starts %q, want %q: nothing pulled, the binary with its file capability", img[:2], want)
	}
	if !slices.Contains(img, `ENTRYPOINT ["/`+imagecontext.BinaryPath+`"]`) {
		t.Errorf("Dockerfile.go-metro's ENTRYPOINT is not /%s", imagecontext.BinaryPath)
	}
	if len(c.Args) != 3 || c.Args[0] != "run" || c.Args[1] != "--config" {
		t.Fatalf("container args %v, want run --config FILE", c.Args)
	}
	// The config file comes from the ConfigMap, mounted read-only.
	mounted := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap.Name == cm.Metadata.Name && m.ReadOnly && c.Args[2] == m.MountPath+"/conf.yaml" {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("--config %s is not conf.yaml of ConfigMap %s mounted read-only", c.Args[2], cm.Metadata.Name)
	}
	// The socket's directory is the agent's, mounted from the host.
	sockMounted := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.HostPath.Path == dsd.HostSocketPath && path.Clean(m.MountPath) == path.Dir(dsd.SocketPath) {
				sockMounted = true
			}
		}
	}
	if !sockMounted {
		t.Errorf("no volume mounts host %s at %s", dsd.HostSocketPath, path.Dir(dsd.SocketPath))
	}
}
