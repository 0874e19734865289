// Command ratios reads `go test -bench` output of BenchmarkVerify and prints,
// per algorithm and implementation, the median ns/op and cpu-ns/op, their
// ratios to the medians of impl=floor for the same algorithm, the CPU time
// spent above the floor's (median minus median), and the median B/op and
// allocs/op, as a Markdown table.
//
//	go run ./cmd/ratios results.txt
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^BenchmarkVerify/alg=([^/\s]+)/impl=([^\s]+?)(?:-\d+)?\s+\d+\s+([\d.e+]+) ns/op(.*)$`)

type samples struct{ ns, cpu, bytes, allocs []float64 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func metric(rest, unit string) (float64, bool) {
	f := strings.Fields(rest)
	for i := 1; i < len(f); i++ {
		if f[i] == unit {
			v, err := strconv.ParseFloat(f[i-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func main() {
	var in io.Reader = os.Stdin
	if len(os.Args) > 1 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	data := map[string]map[string]*samples{}
	var algs, impls []string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		m := line.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		alg, impl := m[1], m[2]
		ns, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		if data[alg] == nil {
			data[alg] = map[string]*samples{}
			algs = append(algs, alg)
		}
		if !slices.Contains(impls, impl) {
			impls = append(impls, impl)
		}
		s := data[alg][impl]
		if s == nil {
			s = &samples{}
			data[alg][impl] = s
		}
		s.ns = append(s.ns, ns)
		if c, ok := metric(m[4], "cpu-ns/op"); ok {
			s.cpu = append(s.cpu, c)
		}
		if b, ok := metric(m[4], "B/op"); ok {
			s.bytes = append(s.bytes, b)
		}
		if a, ok := metric(m[4], "allocs/op"); ok {
			s.allocs = append(s.allocs, a)
		}
	}
	if len(algs) == 0 {
		fmt.Fprintln(os.Stderr, "ratios: no BenchmarkVerify results")
		os.Exit(1)
	}
	fmt.Println("| alg | impl | ns/op | × floor | cpu-ns/op | × floor | cpu above floor | B/op | allocs/op | runs |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, alg := range algs {
		var floor, floorCPU float64
		if s := data[alg]["floor"]; s != nil {
			floor, floorCPU = median(s.ns), median(s.cpu)
		}
		for _, impl := range impls {
			s := data[alg][impl]
			if s == nil {
				continue
			}
			ns, cpu := median(s.ns), median(s.cpu)
			cpuCol, above := "n/a", "n/a"
			if len(s.cpu) > 0 {
				cpuCol = fmtNs(cpu)
				if floorCPU > 0 && impl != "floor" {
					above = fmt.Sprintf("%+.1f µs", (cpu-floorCPU)/1000)
				}
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %d |\n",
				alg, impl, fmtNs(ns), ratio(ns, floor), cpuCol, ratio(cpu, floorCPU), above,
				median(s.bytes), median(s.allocs), len(s.ns))
		}
	}
}

func ratio(v, floor float64) string {
	switch {
	case floor <= 0 || v <= 0:
		return "n/a"
	case v/floor < 0.1:
		return fmt.Sprintf("%.4f", v/floor)
	}
	return fmt.Sprintf("%.2f", v/floor)
}

func fmtNs(ns float64) string {
	switch {
	case ns >= 1000:
		return strconv.FormatFloat(ns, 'f', 0, 64)
	case ns >= 10:
		return strconv.FormatFloat(ns, 'f', 1, 64)
	}
	return strconv.FormatFloat(ns, 'f', 2, 64)
}
