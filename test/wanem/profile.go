package main

// Optional CPU profile for tuning: WANEM_CPUPROFILE=/path writes a pprof profile until exit.

import (
	"os"
	"runtime/pprof"
)

var profileFile *os.File

func startProfile() {
	path := os.Getenv("WANEM_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fatal("cpu profile: %v", err)
	}
	profileFile = f
	_ = pprof.StartCPUProfile(f)
}

func stopProfile() {
	if profileFile != nil {
		pprof.StopCPUProfile()
		_ = profileFile.Close()
	}
}
