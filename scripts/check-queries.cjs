// Parses every ```traceql and ```logql block of the Markdown files given as
// arguments (one query per line, as the guides write them), and every Tempo
// or Loki query in the Explore links of the dashboard JSON files given, with
// the Lezer grammars Grafana's own query editors use, and fails naming each
// query that does not parse. Run by scripts/test.sh, which installs the
// grammars.
'use strict';

const fs = require('fs');

const grammars = {
  traceql: require('@grafana/lezer-traceql').parser,
  logql: require('@grafana/lezer-logql').parser,
};

/** Offset of the first syntax error in `query`, or null. */
function firstError(parser, query) {
  let at = null;
  parser.parse(query).iterate({
    enter(node) {
      if (at === null && node.type.isError) at = node.from;
    },
  });
  return at;
}

// A check that cannot fail proves nothing.
if (firstError(grammars.traceql, '{ resource.service.name = "api" && }') === null) {
  console.error('the TraceQL grammar accepted a broken query: the check is not working');
  process.exit(2);
}

/** `[language, query]` of each Tempo or Loki query in a dashboard's Explore links. */
function dashboardQueries(dashboard) {
  const found = [];
  const languages = { tempo: 'traceql', loki: 'logql' };
  (function walk(value) {
    if (Array.isArray(value)) return value.forEach(walk);
    if (value === null || typeof value !== 'object') return;
    if (typeof value.url === 'string' && value.url.startsWith('/explore?')) {
      const panes = JSON.parse(new URLSearchParams(value.url.slice('/explore?'.length)).get('panes'));
      for (const pane of Object.values(panes)) {
        for (const query of pane.queries) {
          const language = languages[query.datasource && query.datasource.type];
          if (!language) throw new Error(`an Explore link queries ${JSON.stringify(query.datasource)}`);
          found.push([language, query.query]);
        }
      }
    }
    Object.values(value).forEach(walk);
  })(dashboard);
  return found;
}

let checked = 0;
const failures = [];
for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, 'utf8');
  const queries = [];
  if (file.endsWith('.json')) {
    queries.push(...dashboardQueries(JSON.parse(text)));
  } else {
    for (const [, language, block] of text.matchAll(/^[ \t]*```(traceql|logql)\n([\s\S]*?)^[ \t]*```/gm)) {
      for (const query of block.split('\n').map((line) => line.trim()).filter(Boolean)) {
        queries.push([language, query]);
      }
    }
  }
  for (const [language, query] of queries) {
    checked += 1;
    const at = firstError(grammars[language], query);
    if (at !== null) {
      failures.push(`${file}: this ${language} does not parse (column ${at + 1}): ${query}`);
    }
  }
}
if (failures.length > 0) {
  console.error(failures.join('\n'));
  process.exit(1);
}
if (checked === 0) {
  console.error('no ```traceql or ```logql blocks or dashboard links found');
  process.exit(1);
}
console.log(`${checked} TraceQL and LogQL queries parse`);
