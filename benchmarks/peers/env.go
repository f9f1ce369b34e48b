package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
)

// Env is the machine and software a run measured.
type Env struct {
	CPU         string            `json:"cpu"`
	Cores       int               `json:"cores"`
	Memory      string            `json:"memory"`
	Kernel      string            `json:"kernel"`
	FS          string            `json:"fs"`   // findmnt of the temp dir
	Disk        string            `json:"disk"` // df of the temp dir
	TempDir     string            `json:"tempdir"`
	Go          string            `json:"go"`
	Versions    map[string]string `json:"versions"` // module path -> version
	Commit      string            `json:"commit"`   // walpub's git commit
	CommandLine string            `json:"cmdline"`
	GuestMemory string            `json:"guest_memory,omitempty"` // what settleMemory did
}

func collectEnv(dir string) Env {
	e := Env{Cores: runtime.NumCPU(), Go: runtime.Version(), TempDir: filepath.Dir(dir), Versions: map[string]string{}}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	e.Memory, _ = meminfo("MemTotal")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	e.FS = command("findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", dir)
	e.Disk = command("df", "-h", "--output=source,fstype,size,avail", dir)
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			v := d.Version
			if d.Replace != nil {
				if d.Replace.Version != "" {
					v = d.Replace.Version
				} else {
					v = "(devel) => " + d.Replace.Path
				}
			}
			e.Versions[d.Path] = v
		}
	}
	e.Commit = command("git", "-C", "../..", "describe", "--always", "--dirty", "--abbrev=12")
	e.CommandLine = strings.TrimSpace("go run . " + strings.Join(os.Args[1:], " "))
	return e
}

// meminfo returns the value of key in /proc/meminfo ("24683772 kB"), or
// an error if it cannot be read or has no such key.
func meminfo(key string) (string, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no %s in /proc/meminfo", key)
}

func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "(" + name + ": " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}
