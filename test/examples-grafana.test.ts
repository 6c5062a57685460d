/**
 * examples/grafana/usagewire-dashboard.json against the Prometheus sink: the dashboard parses, every panel
 * has a title and a query, and every metric and label its queries name is one the sink registers (checked on
 * fresh prom-client registries, not on a list kept by hand).
 */
import { readFileSync } from 'node:fs'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { prometheusSink } from '@usagewire/core/prometheus'

interface Target {
  expr?: string
  datasource?: { type?: string; uid?: string }
}
interface Panel {
  id?: number
  type?: string
  title?: string
  datasource?: { type?: string; uid?: string }
  targets?: Target[]
  fieldConfig?: {
    defaults?: { custom?: { stacking?: { mode?: string } } }
    overrides?: { properties?: { id?: string; value?: unknown }[] }[]
  }
}
interface Variable {
  name: string
  type: string
  query?: unknown
  definition?: string
}
interface Dashboard {
  schemaVersion: number
  panels: Panel[]
  templating: { list: Variable[] }
}

const text = readFileSync(new URL('../examples/grafana/usagewire-dashboard.json', import.meta.url), 'utf8')
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count']
const DATASOURCE = '${DS_PROMETHEUS}'

/** name → { histogram?, label names } of what `prometheusSink(options)` registers on a fresh registry. */
function registered(options: { attributeLabels?: string[] } = {}) {
  const registry = new Registry()
  prometheusSink({ registry, ...options })
  return new Map(
    registry.getMetricsAsArray().map((metric) => [
      metric.name,
      {
        histogram: String(metric.type) === 'histogram',
        labels: [...((metric as { labelNames?: readonly string[] }).labelNames ?? [])],
      },
    ]),
  )
}

describe('examples/grafana/usagewire-dashboard.json', () => {
  const dashboard = JSON.parse(text) as Dashboard
  const variables = dashboard.templating?.list ?? []
  const exprs = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr ?? ''))
  const variableQueries = variables.filter((v) => v.type === 'query').map((v) => v.definition ?? '')
  const queries = [...exprs, ...variableQueries]

  it('is a Grafana 10+ dashboard with a Prometheus datasource variable and the label variables', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(38)
    expect(variables.find((v) => v.name === 'DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' })
    for (const name of ['model', 'dialect', 'route', 'team'])
      expect(
        variables.find((v) => v.name === name),
        name,
      ).toMatchObject({ type: 'query' })
  })

  it('gives every panel a title, a unique id and at least one query on the datasource variable', () => {
    expect(dashboard.panels.length).toBeGreaterThan(0)
    const ids = dashboard.panels.map((panel) => panel.id)
    expect(new Set(ids).size).toBe(ids.length)
    for (const panel of dashboard.panels) {
      expect(panel.title?.trim(), JSON.stringify(panel.id)).toBeTruthy()
      expect(panel.targets?.length ?? 0, panel.title).toBeGreaterThan(0)
      expect(panel.datasource?.uid, panel.title).toBe(DATASOURCE)
      for (const target of panel.targets ?? []) {
        expect(target.expr?.trim(), panel.title).toBeTruthy()
        expect(target.datasource?.uid, panel.title).toBe(DATASOURCE)
      }
    }
  })

  it('names only metrics the sink registers (histograms with _bucket, _sum or _count), and each of them', () => {
    const metrics = registered()
    const used = new Set<string>()
    for (const query of queries) {
      for (const [token] of query.matchAll(/usagewire_[a-z_]+/g)) {
        const suffix = HISTOGRAM_SUFFIXES.find(
          (s) => token.endsWith(s) && metrics.get(token.slice(0, -s.length))?.histogram,
        )
        const name = suffix ? token.slice(0, -suffix.length) : token
        expect(metrics.has(name), `${token} in ${query}`).toBe(true)
        if (metrics.get(name)?.histogram) expect(suffix, `${token} is a histogram: use a suffix`).toBeDefined()
        used.add(name)
      }
    }
    expect([...used].sort()).toEqual([...metrics.keys()].sort())
  })

  it("uses only labels the metrics have (with attributeLabels: ['team'])", () => {
    const metrics = registered({ attributeLabels: ['team'] })
    const labelsOf = (token: string) => {
      const suffix = HISTOGRAM_SUFFIXES.find(
        (s) => token.endsWith(s) && metrics.get(token.slice(0, -s.length))?.histogram,
      )
      const metric = metrics.get(suffix ? token.slice(0, -suffix.length) : token)
      return [...(metric?.labels ?? []), ...(suffix === '_bucket' ? ['le'] : [])]
    }
    for (const query of queries) {
      const inQuery = new Set<string>()
      for (const [, token, matchers] of query.matchAll(/(usagewire_[a-z_]+)(?:\{([^}]*)\})?/g)) {
        const labels = labelsOf(token!)
        labels.forEach((label) => inQuery.add(label))
        for (const [, label] of (matchers ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g))
          expect(labels, `${label} on ${token} in ${query}`).toContain(label)
      }
      const grouped = [...query.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap(([, list]) =>
        list!.split(',').map((label) => label.trim()),
      )
      const valuesOf = [...query.matchAll(/label_values\([^,]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/g)].map(([, l]) => l!)
      for (const label of [...grouped, ...valuesOf]) expect([...inQuery], `${label} in ${query}`).toContain(label)
    }
  })

  it('refers only to its own variables and built-in intervals', () => {
    const names = new Set([...variables.map((v) => v.name), '__rate_interval', '__range', '__interval'])
    for (const query of queries)
      for (const [, name] of query.matchAll(/\$\{?([a-zA-Z_][a-zA-Z0-9_]*)/g))
        expect(names.has(name!), `$${name} in ${query}`).toBe(true)
  })

  it('never stacks reasoning tokens, which are part of output', () => {
    const withReasoning = dashboard.panels.filter((panel) =>
      (panel.targets ?? []).some((target) => target.expr?.includes('usagewire_reasoning_output_tokens_total')),
    )
    expect(withReasoning.length).toBeGreaterThan(0)
    for (const panel of withReasoning) {
      expect(panel.fieldConfig?.defaults?.custom?.stacking?.mode ?? 'none', panel.title).toBe('none')
      const stackingOverrides = (panel.fieldConfig?.overrides ?? []).flatMap((o) =>
        (o.properties ?? []).filter((p) => p.id === 'custom.stacking'),
      )
      expect(stackingOverrides, panel.title).toEqual([])
    }
  })
})
