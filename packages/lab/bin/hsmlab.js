#!/usr/bin/env node
// Thin launcher, committed executable so that npm can link it before the first build.
import '../dist/bin/hsmlab.js'
