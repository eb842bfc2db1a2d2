module github.com/DataDog/datadog-agent

go 1.25.6
