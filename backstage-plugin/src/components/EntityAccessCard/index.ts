export { EntityAccessCard } from './EntityAccessCard';
export type { EntityAccessCardProps } from './EntityAccessCard';
