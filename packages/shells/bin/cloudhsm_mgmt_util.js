#!/usr/bin/env node
// Thin launcher, committed executable so that npm can link it before the first build.
import '../dist/bin/cloudhsm_mgmt_util.js'
