package main

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

func TestAttribute(t *testing.T) {
	// One CPU: the capturer (tid 42) is switched in at 100.000000 and out
	// at 100.001000; in between a timer interrupt expires tbf's watchdog and
	// its softirqs run (40 + 100 µs), then a softirq runs inside one of its
	// system calls (10 µs). The softirq after the switch-out runs in the idle
	// task and is not the capturer's.
	const (
		in     = "          <idle>-0       [000] d..2.   100.000000: sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=gm next_pid=42 next_prio=120\n"
		timer  = "              gm-42      [000] d.h..   100.000100: local_timer_entry: vector=236\n"
		expire = "              gm-42      [000] d.h..   100.000101: hrtimer_expire_entry: hrtimer=00000000813dd86e function=qdisc_watchdog now=1\n"
		chain  = "              gm-42      [000] ..s..   100.000110: softirq_entry: vec=2 [action=NET_TX]\n" +
			"              gm-42      [000] ..s..   100.000150: softirq_exit: vec=2 [action=NET_TX]\n" +
			"              gm-42      [000] ..s..   100.000150: softirq_entry: vec=3 [action=NET_RX]\n" +
			"              gm-42      [000] ..s..   100.000250: softirq_exit: vec=3 [action=NET_RX]\n"
		syscall = "              gm-42      [000] .....   100.000300: sys_enter: NR 281 (6, 7f7e37ffe584, 80, 0, 0, 0)\n" +
			"              gm-42      [000] ..s..   100.000310: softirq_entry: vec=3 [action=NET_RX]\n" +
			"              gm-42      [000] ..s..   100.000320: softirq_exit: vec=3 [action=NET_RX]\n" +
			"              gm-42      [000] .....   100.000330: sys_exit: NR 281 = 0\n"
		out  = "              gm-42      [000] d..2.   100.001000: sched_switch: prev_comm=gm prev_pid=42 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120\n"
		idle = "          <idle>-0       [000] d.h..   100.001100: local_timer_entry: vector=236\n" +
			"          <idle>-0       [000] ..s..   100.001110: softirq_entry: vec=3 [action=NET_RX]\n" +
			"          <idle>-0       [000] ..s..   100.001200: softirq_exit: vec=3 [action=NET_RX]\n"
		ipi = "              gm-42      [000] d.h..   100.000100: call_function_single_entry: vector=251\n"
	)
	us := time.Microsecond
	tests := []struct {
		name    string
		trace   string
		onCPU   time.Duration
		causes  map[string]time.Duration
		wantErr bool
	}{
		{"timer, system call, idle", in + timer + expire + chain + syscall + out + idle, 1000 * us,
			map[string]time.Duration{"timer qdisc_watchdog": 140 * us, "system call": 10 * us}, false},
		{"IPI", in + ipi + chain + out, 1000 * us, map[string]time.Duration{"IPI": 140 * us}, false},
		{"timer with no hrtimer named", in + timer + chain + out, 1000 * us, map[string]time.Duration{"timer": 140 * us}, false},
		{"not the capturer's", idle, 0, map[string]time.Duration{}, false},
		{"lost events", in + "CPU:1 [LOST 12 EVENTS]\n" + out, 0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := attribute(bufio.NewScanner(strings.NewReader(tt.trace)), map[int]bool{42: true})
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := got.onCPU - tt.onCPU; d < -us/10 || d > us/10 {
				t.Errorf("on CPU %v, want %v", got.onCPU, tt.onCPU)
			}
			if len(got.causes) != len(tt.causes) {
				t.Errorf("causes %v, want %v", got.causes, tt.causes)
			}
			var sum time.Duration
			for k, want := range tt.causes {
				if d := got.causes[k] - want; d < -us/10 || d > us/10 {
					t.Errorf("%s: %v, want %v", k, got.causes[k], want)
				}
				sum += want
			}
			if d := got.softirq - sum; d < -us/10 || d > us/10 {
				t.Errorf("softirq %v, want %v", got.softirq, sum)
			}
		})
	}
}
