module github.com/gometro/go-metro

go 1.23.0

require (
	github.com/DataDog/datadog-go/v5 v5.6.0
	github.com/google/gopacket v1.1.19
	github.com/spf13/cobra v1.8.1
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.34.0
	golang.org/x/sys v0.29.0
	gopkg.in/yaml.v2 v2.4.0
)

require (
	github.com/Microsoft/go-winio v0.5.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/kr/text v0.2.0 // indirect
	github.com/spf13/pflag v1.0.5 // indirect
)
