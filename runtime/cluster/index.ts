export { MAX_CRASH_STREAK, startKanmonCluster, type ClusterOptions, type KanmonCluster } from './primary.js';
export { runClusterWorker } from './worker.js';
export { cgroupCpuLimit, resolveWorkerCount } from './worker-count.js';
