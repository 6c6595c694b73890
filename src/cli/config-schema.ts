/**
 * The JSON Schema of the config file, generated from the settings table of src/config.ts (`herald config schema`).
 * Editors use it for completion and inline checks (`"$schema": "./herald.schema.json"` in the file). It says what
 * a schema can say: types, bounds, choices, unknown keys; src/config.ts still judges the rest (URL shapes, CIDRs,
 * dates, the secret's strength, rules across settings), which is why `herald config check` runs that code itself.
 */
import { RULE_FIELDS, SETTING_NAMES, settingInfo, type HeraldConfig, type SettingInfo } from '../config.js';

type Schema = Record<string, unknown>;

const RULES: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(
    Object.entries(RULE_FIELDS).map(([field, kind]) => [field, kind === 'boolean' ? { type: 'boolean' } : { type: 'integer', minimum: 0 }]),
  ),
};

/** The value shapes of the JSON settings, which the table knows only as `json`. */
const JSON_SETTINGS: Partial<Record<keyof HeraldConfig, Schema>> = {
  namespaces: { type: 'object', propertyNames: { pattern: '^[^:\\s]{1,64}$' }, additionalProperties: RULES },
  defaultNamespace: RULES,
  scopedApiKeys: {
    type: 'array',
    items: {
      type: 'object',
      required: ['key', 'namespaces'],
      additionalProperties: false,
      properties: { key: { type: 'string', minLength: 16 }, namespaces: { type: 'array', items: { type: 'string' } } },
    },
  },
};

function settingSchema(info: SettingInfo): Schema {
  const description = `${info.doc}. Flag ${info.flag}, environment ${info.env}.`;
  const base: Schema = { description, default: info.default };
  switch (info.kind) {
    case 'int':
      return { type: 'integer', ...(info.min !== undefined ? { minimum: info.min } : {}), ...(info.max !== undefined ? { maximum: info.max } : {}), ...base };
    case 'bool':
      return { type: 'boolean', ...base };
    case 'string':
      return { type: 'string', ...(info.oneOf ? { enum: info.oneOf } : {}), ...base };
    case 'list':
      return { type: 'array', items: { type: 'string' }, ...base };
    case 'json':
      return { ...(JSON_SETTINGS[info.key] ?? {}), ...base };
  }
}

export function configSchema(): Schema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Herald configuration file',
    description: 'herald serve --config FILE. Comments (// and /* */) are allowed. See docs/configuration.md.',
    type: 'object',
    additionalProperties: false,
    properties: {
      $schema: { type: 'string', description: 'where editors find this schema; Herald ignores it' },
      ...Object.fromEntries(SETTING_NAMES.map((key) => [key, settingSchema(settingInfo(key))])),
    },
  };
}
