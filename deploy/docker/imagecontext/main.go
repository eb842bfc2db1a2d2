// Command imagecontext writes the build context of the go-metro image:
//
//	go run ./deploy/docker/imagecontext -o bin/image
//	docker build -f deploy/docker/Dockerfile.go-metro -t go-metro:TAG bin/image
//
// (make image does both.) See internal/imagecontext for why the binary
// comes in a tar archive.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/gometro/go-metro/internal/imagecontext"
)

func main() {
	out := flag.String("o", "bin/image", "directory to write "+imagecontext.TarName+" into")
	flag.Parse()
	if err := imagecontext.Build(context.Background(), "go", ".", *out); err != nil {
		fmt.Fprintf(os.Stderr, "imagecontext: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s/%s\n", *out, imagecontext.TarName)
}
