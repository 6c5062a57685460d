export { postgresLedger, type PostgresLedger, type PostgresLedgerOptions, type PostgresLedgerStats } from './ledger.js'
export { migrate, migrations, DEFAULT_TABLE, type Migration } from './schema.js'
