// Node 20 lacks Object.groupBy / Map.groupBy, which the 1.7 CLI (`auth`, engines node >= 22)
// needs; seed.mjs preloads this with `node --import` when they are missing.
if (!Object.groupBy) Object.groupBy = (items, key) => { const out = Object.create(null); let i = 0; for (const x of items) { const k = key(x, i++); (out[k] ??= []).push(x); } return out; };
if (!Map.groupBy) Map.groupBy = (items, key) => { const out = new Map(); let i = 0; for (const x of items) { const k = key(x, i++); if (!out.has(k)) out.set(k, []); out.get(k).push(x); } return out; };
