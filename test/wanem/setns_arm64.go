package main

// The syscall package predates setns and has no constant for it.
const sysSetns = 268
