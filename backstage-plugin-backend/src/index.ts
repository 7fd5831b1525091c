/**
 * meshgate access events as Backstage notifications (backend plugin `meshgate-access`).
 *
 * @packageDocumentation
 */
export { meshgateAccessPlugin as default } from './plugin';
