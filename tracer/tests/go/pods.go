// pods: N pods prepared at once the way containerd 2.0.0-rc.0 does with
// user namespaces (an id-mapped open_tree clone of ONE shared lower layer
// per pod, moved to TMP/ovl-idmapped<k>/0), a clone of some pods held busy
// by a separate process started by a shell that execs, then every pod's
// cleanup in parallel goroutines: plain umount2, then os.RemoveAll.
//
// Usage: pods LAYER TMP N HELD_FILE... (HELD_FILE is relative to a clone:
// one per held pod, pods 0..len-1 are held). Prints one JSON object per
// line; after `{"done":true}` it keeps the holders alive until a line
// arrives on stdin.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const (
	sysOpenTree      = 428
	sysMoveMount     = 429
	sysMountSetattr  = 442
	openTreeClone    = 1
	openTreeCloexec  = 0x80000
	atEmptyPath      = 0x1000
	moveMountFEmpty  = 4
	mountAttrIdmap   = 0x100000
)

type mountAttr struct {
	AttrSet     uint64
	AttrClr     uint64
	Propagation uint64
	UsernsFd    uint64
}

func out(v map[string]interface{}) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func fail(what string, err error) {
	out(map[string]interface{}{"error": what + ": " + err.Error()})
	os.Exit(1)
}

func cstr(s string) *byte {
	p, err := syscall.BytePtrFromString(s)
	if err != nil {
		fail("path", err)
	}
	return p
}

func clone(layer, target string, userns int) error {
	fd, _, e := syscall.Syscall(sysOpenTree, uintptr(^uint(99)), // AT_FDCWD = -100
		uintptr(unsafe.Pointer(cstr(layer))), openTreeClone|openTreeCloexec)
	if e != 0 {
		return fmt.Errorf("open_tree: %v", e)
	}
	defer syscall.Close(int(fd))
	attr := mountAttr{AttrSet: mountAttrIdmap, UsernsFd: uint64(userns)}
	_, _, e = syscall.Syscall6(sysMountSetattr, fd, uintptr(unsafe.Pointer(cstr(""))),
		atEmptyPath, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if e != 0 {
		return fmt.Errorf("mount_setattr: %v", e)
	}
	_, _, e = syscall.Syscall6(sysMoveMount, fd, uintptr(unsafe.Pointer(cstr(""))),
		uintptr(^uint(99)), uintptr(unsafe.Pointer(cstr(target))), moveMountFEmpty, 0)
	if e != 0 {
		return fmt.Errorf("move_mount: %v", e)
	}
	return nil
}

func main() {
	layer, tmp := os.Args[1], os.Args[2]
	n, _ := strconv.Atoi(os.Args[3])
	held := os.Args[4:]

	// A user namespace for the id mapping, like containerd's.
	ns := exec.Command("sleep", "3600")
	ns.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig:   syscall.SIGKILL, // gone with this program, even killed
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
	}
	if err := ns.Start(); err != nil {
		fail("userns", err)
	}
	defer ns.Process.Kill()
	userns, err := syscall.Open(fmt.Sprintf("/proc/%d/ns/user", ns.Process.Pid), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		fail("open userns", err)
	}

	dirs := make([]string, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for k := 0; k < n; k++ {
		dirs[k] = filepath.Join(tmp, fmt.Sprintf("ovl-idmapped%d", k))
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			errs[k] = clone(layer, filepath.Join(dirs[k], "0"), userns)
		}(k)
	}
	wg.Wait()
	for k, e := range errs {
		if e != nil {
			fail(fmt.Sprintf("pod %d", k), e)
		}
	}
	syscall.Close(userns)

	// Holders: a shell that opens the file through the pod's clone, then
	// execs sleep (so the holder's comm is "sleep").
	var holders []*exec.Cmd
	for k, f := range held {
		path := filepath.Join(dirs[k], "0", f)
		h := exec.Command("sh", "-c", "exec 3<\"$0\"; exec sleep 3600", path)
		h.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := h.Start(); err != nil {
			fail("holder", err)
		}
		holders = append(holders, h)
		for i := 0; ; i++ {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", h.Process.Pid))
			_, fdErr := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", h.Process.Pid))
			if string(comm) == "sleep\n" && fdErr == nil {
				break
			}
			if i > 1000 {
				fail("holder not ready", fmt.Errorf("pid %d", h.Process.Pid))
			}
			time.Sleep(5 * time.Millisecond)
		}
		out(map[string]interface{}{"holder": h.Process.Pid, "pod": k})
	}

	// Every pod's cleanup at once.
	start := make(chan struct{})
	results := make([]map[string]interface{}, n)
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			<-start
			r := map[string]interface{}{"pod": k}
			if err := syscall.Unmount(filepath.Join(dirs[k], "0"), 0); err != nil {
				r["umount_errno"] = int(err.(syscall.Errno))
			} else {
				r["umount_errno"] = 0
			}
			if err := os.RemoveAll(dirs[k]); err != nil {
				r["removeall"] = err.Error()
			}
			results[k] = r
		}(k)
	}
	close(start)
	wg.Wait()
	for _, r := range results {
		out(r)
	}
	// The holders stay until the caller has looked at them.
	fmt.Println(`{"done":true}`)
	var line string
	fmt.Scanln(&line)
	for _, h := range holders {
		h.Process.Kill()
		h.Wait()
	}
}
