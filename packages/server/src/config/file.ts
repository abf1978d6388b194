/** Reads this component's YAML config file (shared reader: @flotilla/protocol). */
export { readYamlConfigFile as readConfigFile } from '@flotilla/protocol';
