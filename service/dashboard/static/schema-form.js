// A form for a function's arguments, made from its JSON schema (GET /v1/functions): one field per argument,
// typed inputs for scalars, JSON text for lists and objects. The API checks everything; its 422 errors are
// shown next to the field each one names.

import { el } from './dom.js';

function resolve(schema, root) {
  if (schema?.$ref?.startsWith('#/$defs/')) return root.$defs?.[schema.$ref.slice(8)] ?? {};
  if (Array.isArray(schema?.anyOf)) {
    const concrete = schema.anyOf.filter((option) => option.type !== 'null');
    if (concrete.length === 1) return { ...resolve(concrete[0], root), nullable: true, title: schema.title };
  }
  return schema ?? {};
}

function kindOf(schema) {
  if (Array.isArray(schema.enum)) return 'enum';
  if (['string', 'integer', 'number', 'boolean'].includes(schema.type)) return schema.type;
  return 'json';
}

function input(name, schema, required) {
  const id = `arg-${name}`;
  const kind = kindOf(schema);
  const common = { id, name, required: required || undefined, 'data-kind': kind };
  if (kind === 'enum') {
    return el('select', common, required ? [] : el('option', { value: '' }, '—'),
      schema.enum.map((value) => el('option', { value: JSON.stringify(value) }, String(value))));
  }
  if (kind === 'boolean') return el('input', { ...common, type: 'checkbox', checked: schema.default === true });
  if (kind === 'integer' || kind === 'number') {
    return el('input', { ...common, type: 'number', step: kind === 'integer' ? 1 : 'any', min: schema.minimum,
      max: schema.maximum, value: schema.default });
  }
  if (kind === 'string') {
    const type = schema.format === 'email' ? 'email' : 'text';
    return el('input', { ...common, type, minlength: schema.minLength, maxlength: schema.maxLength,
      pattern: schema.pattern, value: schema.default, spellcheck: 'false' });
  }
  const placeholder = schema.type === 'array' ? '[ … ] as JSON' : schema.type === 'object' ? '{ … } as JSON' : 'any JSON value';
  const value = schema.default === undefined ? undefined : JSON.stringify(schema.default);
  const area = el('textarea', { ...common, rows: 3, placeholder, spellcheck: 'false' });
  if (value !== undefined) area.value = value;
  return area;
}

export function buildFields(container, schema) {
  const legend = container.querySelector('legend');
  container.replaceChildren(...(legend ? [legend] : []));
  const required = new Set(schema.required ?? []);
  const properties = Object.entries(schema.properties ?? {});
  if (!properties.length) container.append(el('p', { class: 'muted' }, 'No arguments.'));
  for (const [name, raw] of properties) {
    const property = resolve(raw, schema);
    const hints = [property.type ?? 'any JSON', property.format, required.has(name) ? 'required' : 'optional']
      .filter(Boolean).join(', ');
    container.append(el('div', { class: 'field', dataset: { field: name, arg: 'true' } },
      el('label', { for: `arg-${name}` }, property.title ?? name, ' ', el('span', { class: 'muted' }, `(${hints})`)),
      input(name, property, required.has(name)),
      property.description ? el('p', { class: 'muted' }, property.description) : null,
      el('p', { class: 'field-error', hidden: true })));
  }
}

// The kwargs the form holds; a value that cannot be read (bad JSON) is reported on its field, not sent.
export function readKwargs(container) {
  const kwargs = {};
  const problems = [];
  for (const field of container.querySelectorAll('[data-arg]')) {
    const name = field.dataset.field;
    const control = field.querySelector('input, select, textarea');
    const kind = control.dataset.kind;
    const raw = control.value;
    if (kind === 'boolean') {
      kwargs[name] = control.checked;
      continue;
    }
    if (raw === '') continue; // left out: the API says whether it is required
    if (kind === 'integer' || kind === 'number') {
      kwargs[name] = Number(raw);
    } else if (kind === 'string') {
      kwargs[name] = raw;
    } else {
      try {
        kwargs[name] = JSON.parse(raw);
      } catch {
        problems.push({ loc: ['body', 'kwargs', name], msg: 'not valid JSON', type: 'json_invalid' });
      }
    }
  }
  return { kwargs, problems };
}

export function clearErrors(form) {
  for (const node of form.querySelectorAll('.field-error')) {
    node.textContent = '';
    node.hidden = true;
  }
  for (const node of form.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
  const general = form.querySelector('#form-error');
  general.textContent = '';
  general.hidden = true;
}

// Each problem of a 422 on the field its `loc` names (`["body", "kwargs", "rows"]`, `["body", "job_id"]`);
// those that name no field of the form go in the form's own error line.
export function showErrors(form, problems) {
  const general = [];
  for (const problem of problems) {
    const loc = problem.loc ?? [];
    const name = loc[1] === 'kwargs' ? loc[2] : loc[1];
    const field = name === undefined ? null : form.querySelector(`.field[data-field="${CSS.escape(String(name))}"]`);
    if (field === null) {
      general.push(problem.msg);
      continue;
    }
    const where = loc[1] === 'kwargs' && loc.length > 3 ? `${loc.slice(3).join('.')}: ` : '';
    const error = field.querySelector('.field-error');
    error.textContent = [error.textContent, where + problem.msg].filter(Boolean).join('; ');
    error.hidden = false;
    field.querySelector('input, select, textarea')?.setAttribute('aria-invalid', 'true');
  }
  if (general.length) {
    const line = form.querySelector('#form-error');
    line.textContent = general.join('; ');
    line.hidden = false;
  }
}
