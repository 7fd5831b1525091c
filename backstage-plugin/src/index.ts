export { meshgateAccessPlugin, AccessRequestsPage, EntityAccessCard } from './plugin';
export { RequestAccessDialog } from './components/RequestAccessDialog';
export type { RequestAccessDialogProps } from './components/RequestAccessDialog';
export type { EntityAccessCardProps } from './components/EntityAccessCard';
export {
  DEFAULT_OWNERSHIP_ANNOTATIONS,
  entityTargets,
  isMeshgateProtected,
} from './lib/access';
export * from './api';
