// Command rttpeer is the client and the server of the docker lab
// (tests/agent, TestAgentDockerWorkloads), built static to run in images
// FROM scratch. The server answers each request after a think time; the
// client makes request/response exchanges on one connection, then keeps
// it open and quiet, so that the kernel's srtt and go-metro's stay put
// while the test reads both.
//
//	rttpeer serve -listen :7000 -think 10ms
//	rttpeer client -server 172.17.0.2:7000 -start 2s -n 30 -every 20ms -quiet 60s
//
// With think time below Linux's 40 ms delayed-ACK timer, the server's
// answer carries the ACK of the request: the client's RTT samples are the
// think time plus the bridge's, the same for the kernel and for a capture.
// The kernel's srtt is the path's only without think time, which would
// leave nothing but microseconds to compare on a bridge; no netem here.
//
// The client prints "connected LOCAL REMOTE" once connected and "quiet"
// once its exchanges are done; both end the line with a newline.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rttpeer serve|client [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "client":
		err = client(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rttpeer:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", ":7000", "address to listen on")
	think := fs.Duration("think", 10*time.Millisecond, "wait before each answer")
	req := fs.Int("req", 300, "request bytes")
	resp := fs.Int("resp", 4000, "answer bytes")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			in, out := make([]byte, *req), make([]byte, *resp)
			for {
				if _, err := io.ReadFull(c, in); err != nil {
					return
				}
				time.Sleep(*think)
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}()
	}
}

func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	server := fs.String("server", "", "server address")
	start := fs.Duration("start", 0, "wait before connecting (the agent learns of the container meanwhile)")
	n := fs.Int("n", 30, "exchanges")
	every := fs.Duration("every", 20*time.Millisecond, "pause between exchanges")
	req := fs.Int("req", 300, "request bytes")
	resp := fs.Int("resp", 4000, "answer bytes")
	quiet := fs.Duration("quiet", time.Minute, "how long the connection stays open and quiet after the exchanges")
	fs.Parse(args)
	time.Sleep(*start)
	c, err := net.DialTimeout("tcp", *server, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("connected %s %s\n", c.LocalAddr(), c.RemoteAddr())
	in, out := make([]byte, *resp), make([]byte, *req)
	for range *n {
		if _, err := c.Write(out); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, in); err != nil {
			return err
		}
		time.Sleep(*every)
	}
	fmt.Println("quiet")
	time.Sleep(*quiet)
	return nil
}
