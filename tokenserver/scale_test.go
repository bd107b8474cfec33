//go:build scale

/*
Copyright 2026 The m2m-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package tokenserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// TestScaleTokenServer (make scale) measures the real m2m-tokenserver process (what the
// Deployment runs) against SCALE_RECORDS (default 10,000) record Secrets in envtest: the time
// from start to ready (the reflector has listed every record and the index is built), its
// resident memory, and how long a record change takes to reach issuance (a secret rotated in
// the record, then used), over 100 changes. Goals (Step 13): RSS <= 64 MiB at 10,000 clients,
// <= 400 MiB at 100,000, and a record change usable within 100 ms at p99 at 100,000.
func TestScaleTokenServer(t *testing.T) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("SCALE_RECORDS")); err == nil && v > 0 {
		n = v
	}
	g := NewWithT(t)
	ls := startLiveServer(t, func(o *Options) { o.AuditLog = io.Discard }) // namespace + signing keys
	// Clients are granted by SCALE_GRANTS distinct grants (default 50, as if by 50 ScopePolicies;
	// 0: every client its own, the index's worst case).
	grants := 50
	if v, err := strconv.Atoi(os.Getenv("SCALE_GRANTS")); err == nil && v >= 0 {
		grants = v
	}
	recs := createRecords(t, ls, n, grants)

	bin := buildTokenServer(t)
	kubeconfig := writeKubeconfig(t)
	port := freePort(t)
	url, metricsURL := "http://127.0.0.1:"+port, "http://"+freeAddr(t)
	start := time.Now()
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--credentials-namespace", ls.ns,
		"--addr", "127.0.0.1:"+port, "--metrics-addr", strings.TrimPrefix(metricsURL, "http://"),
		"--issuer", url, "--rate-limit", "1000000", "--rate-burst", "1000000")
	logPath := filepath.Join(t.TempDir(), "tokenserver.log")
	logFile, err := os.Create(logPath)
	g.Expect(err).NotTo(HaveOccurred())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	defer func() {
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("token server output (last 4 KiB):\n%s", out[max(0, len(out)-4096):])
		}
	}()
	if extra := os.Getenv("SCALE_TOKENSERVER_ENV"); extra != "" { // e.g. GOGC=50
		cmd.Env = append(os.Environ(), strings.Fields(extra)...)
	}
	g.Expect(cmd.Start()).To(Succeed())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	g.Eventually(func() int { return status(metricsURL + "/readyz") }).WithTimeout(5 * time.Minute).WithPolling(50 * time.Millisecond).Should(Equal(200))
	ready := time.Since(start)
	g.Expect(metric(t, metricsURL, "m2m_tokenserver_clients_loaded")).To(Equal(float64(n)))

	// Serve some traffic across many clients before reading the memory, so it is a working
	// figure, not an idle one.
	for i := 0; i < 2000; i++ {
		r := recs[i%len(recs)]
		if code := tokenStatus(url, r.id, r.secret); code != 200 {
			t.Fatalf("client %d: status %d", i%len(recs), code)
		}
	}
	rss := rssMiB(t, cmd.Process.Pid)
	heap := metric(t, metricsURL, "go_memstats_heap_inuse_bytes") / (1 << 20)
	anon := procKiB(t, cmd.Process.Pid, "smaps_rollup", "Anonymous:") / 1024

	// Index update latency: rotate a client's secret in its record and time until it works.
	const changes = 100
	lat := make([]time.Duration, 0, changes)
	for i := range changes {
		rec, secret := newRecord(t)
		rec.UID, rec.ClientID = recs[i%len(recs)].rec.UID, recs[i%len(recs)].rec.ClientID
		t0 := time.Now()
		ls.putRecord(t, rec)
		g.Eventually(func() int { return tokenStatus(url, rec.ClientID, secret) }).WithTimeout(10 * time.Second).
			WithPolling(time.Millisecond).Should(Equal(200))
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := lat[(len(lat)*99+99)/100-1]
	fmt.Printf("SCALE tokenserver records=%d grants=%d ready_after=%.2fs rss=%.1fMiB (anonymous %.1fMiB, heap in use %.1fMiB) record_change_p50=%dms record_change_p99=%dms record_change_max=%dms\n",
		n, grants, ready.Seconds(), rss, anon, heap, lat[len(lat)/2].Milliseconds(), p99.Milliseconds(), lat[len(lat)-1].Milliseconds())
	switch {
	case n >= 100000:
		g.Expect(rss).To(BeNumerically("<=", 400), "RSS at %d clients", n)
		g.Expect(p99).To(BeNumerically("<=", 100*time.Millisecond), "record change p99 at %d clients", n)
	case n >= 10000:
		g.Expect(rss).To(BeNumerically("<=", 64), "RSS at %d clients", n)
	}
}

type scaleRecord struct {
	rec        *credential.Record
	id, secret string
}

// createRecords writes n record Secrets as the controller would, from 16 goroutines. Record i
// is granted audience i mod grants (each its own when grants is 0).
func createRecords(t *testing.T, ls *liveServer, n, grants int) []scaleRecord {
	t.Helper()
	fast := rest.CopyConfig(envCfg)
	fast.QPS, fast.Burst = 2000, 4000
	c, err := client.New(fast, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]scaleRecord, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				g := i
				if grants > 0 {
					g = i % grants
				}
				rec, secret := newRecord(t, func(r *credential.Record) { r.Grants[0].Audience = fmt.Sprintf("api-%d.team-%d", g, g) })
				out[i] = scaleRecord{rec: rec, id: rec.ClientID, secret: secret}
				if err := c.Create(context.Background(), ls.recordSecret(t, rec)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

// buildTokenServer builds the m2m-tokenserver binary (what the Deployment runs) the way
// `make build` does.
func buildTokenServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "m2m-tokenserver")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/m2m-tokenserver")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building m2m: %v\n%s", err, out)
	}
	return bin
}

func writeKubeconfig(t *testing.T) string {
	t.Helper()
	user, err := testEnv.AddUser(envtest.User{Name: "scale", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func tokenStatus(base, id, secret string) int {
	req, _ := http.NewRequest(http.MethodPost, base+TokenPath, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// metric reads one unlabelled gauge from the server's /metrics (base: its metrics port).
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// rssMiB reads VmRSS of a process from /proc.
func rssMiB(t *testing.T, pid int) float64 { return procKiB(t, pid, "status", "VmRSS:") / 1024 }

// procKiB reads a "<field> <n> kB" line of /proc/<pid>/<file>.
func procKiB(t *testing.T, pid int, file, field string) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/%s", field, pid, file)
	return 0
}
