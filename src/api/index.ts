// Public surface of the cloudnet.io/v1alpha1 API.
export * from './meta.ts';
export * from './conditions.ts';
export * from './site.ts';
export * from './wanmigration.ts';
export * from './crds.ts';
export * from './resources.ts';
export * from './ports.ts';
export * from './site-kubeconfig.ts';
export * from './names.ts';
export * from './tenancy.ts';
export * from './peer-permissions.ts';
