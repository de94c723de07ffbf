// The in-memory store against the store compliance suite.
import { memoryStore } from '../src/index.js'
import { storeComplianceTests } from './store-compliance.js'

storeComplianceTests('memoryStore', () => memoryStore())
