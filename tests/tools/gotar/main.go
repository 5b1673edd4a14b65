// gotar writes a directory tree as one layer tar the way containerd's
// archive writer does (and so BuildKit and docker, which use it), with Go's
// archive/tar: entries depth first with names sorted in each directory, no
// root entry, PAX format, mtimes cut to whole seconds, xattrs as
// SCHILY.xattr.* records, the second and later names of a file as
// hardlinks. For tests: usage: gotar ROOT OUT.tar
package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type inode struct{ dev, ino uint64 }

func xattrs(path string) (map[string]string, error) {
	size, err := syscall.Listxattr(path, nil)
	if err != nil || size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	if size, err = syscall.Listxattr(path, buf); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		n, err := syscall.Getxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, n)
		if n, err = syscall.Getxattr(path, name, v); err != nil {
			return nil, err
		}
		out["SCHILY.xattr."+name] = string(v[:n])
	}
	return out, nil
}

func header(root, rel string, fi fs.FileInfo, seen map[inode]string) (*tar.Header, error) {
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(filepath.Join(root, rel)); err != nil {
			return nil, err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return nil, err
	}
	hdr.Format = tar.FormatPAX
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.AccessTime = time.Time{}
	hdr.ChangeTime = time.Time{}
	hdr.Name = filepath.ToSlash(rel)
	if fi.IsDir() {
		hdr.Name += "/"
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		if hdr.PAXRecords, err = xattrs(filepath.Join(root, rel)); err != nil {
			return nil, err
		}
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().IsRegular() && st.Nlink > 1 {
		key := inode{uint64(st.Dev), st.Ino}
		if first, ok := seen[key]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.Size = 0
		} else {
			seen[key] = hdr.Name
		}
	}
	return hdr, nil
}

func write(root string, tw *tar.Writer) error {
	seen := map[inode]string{}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil || fi.Mode()&fs.ModeSocket != 0 {
			return err
		}
		hdr, err := header(root, rel, fi, seen)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gotar ROOT OUT.tar")
		os.Exit(2)
	}
	out, err := os.Create(os.Args[2])
	if err == nil {
		tw := tar.NewWriter(out)
		if err = write(os.Args[1], tw); err == nil {
			err = tw.Close()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gotar:", err)
		os.Exit(1)
	}
}
