# The closing line of `make test`: the counts of every `test result:` line of cargo test's log,
# or, when no test binary ran, what stopped the build (cargo's `error` lines) instead of counts.
/^test result:/ { p += $4; f += $6; i += $8; ran++ }
/^error(\[E[0-9]+\])?:/ { if (errors < 5) err[errors++] = $0 }
END {
    if (ran == 0 && status != 0) {
        print "build failed: no test ran (see .tools/test.log)"
        for (k = 0; k < errors; k++) print "  " err[k]
        exit
    }
    printf "total: %d passed, %d failed, %d skipped\n", p, f, i
}
